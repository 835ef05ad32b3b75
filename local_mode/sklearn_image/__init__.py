"""What runs inside the scikit-learn image's runtime twin (``.venv-sklearn-1.9-0``): the
serving glue the image builds from source and the container's ``serve`` entry point. These
files import nothing of this project: the twin has only the image's packages."""
