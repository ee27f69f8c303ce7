"""Training: the lecture's mini-batch loop, the papers' recipes, and the run folder.

* :func:`fit` (:mod:`cnnlab.train.loop`): sample a mini-batch, forward, loss, backward,
  update; validation each epoch, the test at the end; returns plain data.
* :class:`Recipe` (:mod:`cnnlab.train.recipe`), the papers' :data:`RECIPES`
  (:mod:`cnnlab.train.recipes`) and :func:`resolve_config` (:mod:`cnnlab.train.config`):
  frozen dataclasses in human units, layered with a TOML file and ``key=value``.
* :func:`open_run` / :class:`Run` / :func:`read_record` (:mod:`cnnlab.train.run`): the run
  folder a training leaves behind, and the model it rebuilds.
* :func:`prepare` / :class:`Request` / :class:`Job` (:mod:`cnnlab.train.job`): a run as
  ``cnnlab train`` resolves it (config, device, data, model, run folder), then ``job.fit()``.
* :func:`evaluate` / :func:`probabilities` (:mod:`cnnlab.train.evaluate`).
* :func:`load_checkpoint` / :func:`save_checkpoint` (:mod:`cnnlab.train.checkpoint`):
  everything a run needs to continue exactly; :func:`load_pretrained`
  (:mod:`cnnlab.train.pretrained`): a torchvision-style state_dict, never unpickled
  unsafely; :mod:`cnnlab.train.distributed`: torchrun's environment and the collectives.

Everything is imported lazily (torch is heavy), so ``import cnnlab.train`` is cheap.
"""

from __future__ import annotations

from cnnlab._lazy import lazy_exports

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Checkpoint": "cnnlab.train.checkpoint",
    "CheckpointError": "cnnlab.train.checkpoint",
    "load_checkpoint": "cnnlab.train.checkpoint",
    "read_checkpoint": "cnnlab.train.checkpoint",
    "save_checkpoint": "cnnlab.train.checkpoint",
    "load_pretrained": "cnnlab.train.pretrained",
    "read_state_dict": "cnnlab.train.pretrained",
    "Job": "cnnlab.train.job",
    "Request": "cnnlab.train.job",
    "prepare": "cnnlab.train.job",
    "FitResult": "cnnlab.train.state",
    "TrainData": "cnnlab.train.splits",
    "TrainState": "cnnlab.train.state",
    "fit": "cnnlab.train.loop",
    "load_data": "cnnlab.train.splits",
    "loss_fn": "cnnlab.train.loss",
    "ConfigError": "cnnlab.train.recipe",
    "Options": "cnnlab.train.recipe",
    "RECIPES": "cnnlab.train.recipes",
    "Recipe": "cnnlab.train.recipe",
    "default_recipe": "cnnlab.train.recipes",
    "describe_keys": "cnnlab.train.config",
    "resolve_config": "cnnlab.train.config",
    "Schedule": "cnnlab.train.optim",
    "make_optimizer": "cnnlab.train.optim",
    "param_groups": "cnnlab.train.optim",
    "apply_init": "cnnlab.train.init",
    "set_dropout": "cnnlab.train.init",
    "Placement": "cnnlab.train.device",
    "configure_threads": "cnnlab.train.device",
    "placement": "cnnlab.train.device",
    "Evaluation": "cnnlab.train.evaluate",
    "evaluate": "cnnlab.train.evaluate",
    "probabilities": "cnnlab.train.evaluate",
    "Run": "cnnlab.train.run",
    "RunWriter": "cnnlab.train.run",
    "build_from_record": "cnnlab.train.run",
    "create_run_dir": "cnnlab.train.run",
    "environment": "cnnlab.train.run",
    "open_run": "cnnlab.train.run",
    "read_record": "cnnlab.train.run",
    "save_weights": "cnnlab.train.run",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
