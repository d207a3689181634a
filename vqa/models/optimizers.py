"""Adam with a second, smaller step size for some variables (a fine-tuned backbone)."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="vqa")
class TwoRateAdam(keras.optimizers.Adam):
    """Adam whose step is multiplied by `slow_factor` for the variables in `slow_paths`.

    Scaling the learning rate, not the gradient: Adam normalises gradients, so a
    scaled gradient would change nothing.

    Args:
        slow_paths: `variable.path` of each variable that learns slowly.
        slow_factor: their learning rate / everyone else's, in (0, 1].
    """

    def __init__(self, slow_paths: list[str], slow_factor: float, **kwargs):
        super().__init__(**kwargs)
        if not 0 < slow_factor <= 1:
            raise ValueError(f"slow_factor must be in (0, 1]. Received: {slow_factor}")
        self.slow_paths = list(slow_paths)
        self.slow_factor = float(slow_factor)
        self._slow_indices: set[int] = set()

    def build(self, var_list):
        super().build(var_list)
        slow = set(self.slow_paths)
        # update_step receives the backend's variable (no .path on TensorFlow), so the
        # slow ones are remembered by index, as Adam keeps its own slots.
        self._slow_indices = {i for i, v in enumerate(var_list) if v.path in slow}

    def update_step(self, gradient, variable, learning_rate):
        if self._get_variable_index(variable) in self._slow_indices:
            learning_rate = learning_rate * self.slow_factor
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {
            **super().get_config(),
            "slow_paths": self.slow_paths,
            "slow_factor": self.slow_factor,
        }
