"""The scikit-learn image's serving glue, for its runtime twin.

The image serves a single model with ``sagemaker_sklearn_container.serving:main`` (its
``SAGEMAKER_SERVING_MODULE``), built from aws/sagemaker-scikit-learn-container and not on
PyPI. This module keeps that module's contract on the real ``sagemaker-containers`` stack:

- the user module is imported by name (``SAGEMAKER_PROGRAM``), and only if that fails
  installed from ``SAGEMAKER_SUBMIT_DIRECTORY`` by ``sagemaker-containers`` (the container's
  ``serve`` installed it already, before gunicorn started);
- ``transform_fn`` together with any of ``input_fn``/``predict_fn``/``output_fn`` is refused;
- a handler the module lacks gets the image's default: decode with ``sagemaker-containers``'
  encoders (float32 for text types), ``model.predict``, encode to a ``worker.Response``;
  ``model_fn`` has no default (the toolkit's raises);
- the model is loaded in each gunicorn worker on its first request (``/ping`` included), and
  ``execution_parameters_fn``, when the module has one, answers ``/execution-parameters``.

What differs from the image is listed in docs/local-mode.md ("What still differs from the
real container").
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

import numpy as np
from sagemaker_containers.beta.framework import (
    content_types,
    encoders,
    env,
    modules,
    transformer,
    worker,
)

logger = logging.getLogger(__name__)


class UserError(Exception):
    """The model's script breaks the container's rules (the image raises its own UserError)."""


def default_input_fn(input_data: Any, content_type: str) -> Any:
    array = encoders.decode(input_data, content_type)
    return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array


def default_predict_fn(input_data: Any, model: Any) -> Any:
    return model.predict(input_data)


def default_output_fn(prediction: Any, accept: str) -> Any:
    return worker.Response(encoders.encode(prediction, accept), mimetype=accept)


def user_transformer(module: ModuleType) -> Any:
    """The toolkit's ``Transformer`` over the module's handlers and the image's defaults."""
    model_fn = getattr(module, "model_fn", transformer.default_model_fn)
    handlers = {
        name: getattr(module, name, None) for name in ("input_fn", "predict_fn", "output_fn")
    }
    transform_fn = getattr(module, "transform_fn", None)
    if transform_fn is not None:
        if any(handlers.values()):
            raise UserError(
                "Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn"
            )
        return transformer.Transformer(model_fn=model_fn, transform_fn=transform_fn)
    return transformer.Transformer(
        model_fn=model_fn,
        input_fn=handlers["input_fn"] or default_input_fn,
        predict_fn=handlers["predict_fn"] or default_predict_fn,
        output_fn=handlers["output_fn"] or default_output_fn,
    )


def import_user_module(name: str, directory: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:  # not installed yet: sagemaker-containers installs it, then imports
        return modules.import_module(directory, name)


_app = None


def main(environ: dict[str, Any], start_response: Any) -> Any:
    """The WSGI app gunicorn runs: built on the worker's first request."""
    global _app
    if _app is None:
        serving = env.ServingEnv()
        module = import_user_module(serving.module_name, serving.module_dir)
        user = user_transformer(module)
        user.initialize()
        _app = worker.Worker(
            transform_fn=user.transform,
            module_name=serving.module_name,
            execution_parameters_fn=getattr(module, "execution_parameters_fn", None),
        )
    return _app(environ, start_response)
