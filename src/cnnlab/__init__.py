"""cnnlab: understand, build, train and look inside convolutional neural networks.

The public API is listed in ``__all__``; everything is imported lazily so that
``import cnnlab`` (and ``cnnlab arith``) stays fast and torch-free until a name needs torch.
"""

from __future__ import annotations

from cnnlab._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "AnalysisError": "cnnlab.errors",
    "CnnlabError": "cnnlab.errors",
    "DataError": "cnnlab.errors",
    "GeometryError": "cnnlab.errors",
    "ShapeError": "cnnlab.errors",
    "SpecError": "cnnlab.errors",
    "UnknownModelError": "cnnlab.errors",
    # zoo
    "ModelInfo": "cnnlab.zoo",
    "create_model": "cnnlab.zoo",
    "list_models": "cnnlab.zoo",
    "model_info": "cnnlab.zoo",
    "model_spec": "cnnlab.zoo",
    # compact notation
    "Spec": "cnnlab.notation",
    "parse_spec": "cnnlab.notation",
    "format_spec": "cnnlab.notation",
    "build_spec": "cnnlab.notation",
    "lecture_pattern": "cnnlab.notation",
    "SpecNet": "cnnlab.notation",
    # static analysis
    "analyze": "cnnlab.analysis",
    "analyze_spec": "cnnlab.analysis",
    "Analysis": "cnnlab.analysis",
    "Row": "cnnlab.analysis",
    "Totals": "cnnlab.analysis",
    "RField": "cnnlab.analysis",
    "TrainingMemory": "cnnlab.analysis",
    "build_on_meta": "cnnlab.analysis",
    # data
    "load_dataset": "cnnlab.data",
    "Dataset": "cnnlab.data",
    "find_dataset": "cnnlab.data",
    "list_datasets": "cnnlab.data",
    "dataset_info": "cnnlab.data",
    "BatchPipeline": "cnnlab.data",
    "Augment": "cnnlab.data",
    # visualization
    "image_grid": "cnnlab.viz",
}

_SUBMODULES = (
    "analysis",
    "course",
    "data",
    "errors",
    "geometry",
    "layers",
    "notation",
    "viz",
    "zoo",
)

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__, _SUBMODULES)
