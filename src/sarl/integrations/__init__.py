"""Adapters that plug sarl's rewards into other RL libraries.

- :mod:`sarl.integrations.trl`: reward functions (SAR, entropy, self-certainty, correctness, the group
  length rewards) for ``trl.GRPOTrainer`` and :class:`~sarl.integrations.trl.SARGRPOTrainer`, which binds
  them to its policy and lets SAR reuse the log-probs TRL already computes. Needs the optional extra:
  ``pip install 'sarl[trl]'``.

Nothing here is imported by ``import sarl``; each integration imports its library only when it is used.
"""
