"""Record training dynamics inside other libraries' training loops.

Each integration lives in its own module and imports its library only when that module is
imported, so ``import cartokit`` never needs them:

- :mod:`cartokit.integrations.hf`: :class:`~cartokit.integrations.hf.CartographyTrainer`, a
  ``transformers.Trainer`` that records in the training forward pass
  (``pip install "cartokit[hf]"``);
- :mod:`cartokit.integrations.lightning`:
  :class:`~cartokit.integrations.lightning.CartographyCallback`, a Lightning callback
  (``pip install "cartokit[lightning]"``).

Both feed a :class:`~cartokit.DynamicsRecorder` with each process's own batches; under
``torchrun``, DDP or accelerate the recorder combines the processes itself at each epoch end
and drops the duplicates a distributed sampler pads with.
"""
