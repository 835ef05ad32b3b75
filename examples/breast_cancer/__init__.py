"""A real scikit-learn model for the demo, trained on a data set that ships with scikit-learn.

``model.py`` trains and packages it (``model.tar.gz`` with ``code/inference.py``), ``data.py``
writes batch-inference input drawn from the data set's distribution.
"""
