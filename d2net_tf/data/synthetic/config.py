"""`SyntheticConfig`: the knobs of the synthetic feature model (see the package docstring)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic feature model (activations are in units of one component's RMS).

    Attributes:
      num_background_components: int, 48. Pool of generic scene components; each video uses a few.
      background_components_per_video: int, 3. Pool components mixed into one video's background.
      background_level: float, 1.0. Total activation of a video's background components.
      num_distractor_components: int, 16. Pool of class-agnostic motion patterns (camera motion,
        people walking) that appear as short bursts in the background.
      num_noise_components: int, 32. Rank of the temporally smooth nuisance.
      component_density: float, 0.3. Fraction of feature dimensions each component touches.
      action_class_weight: float, 0.45. Share of an action's activation on its class-specific
        component.
      action_group_weight: float, 0.25. Share on the component shared by its action group.
      action_variant_weight: float, 0.3. Share on the instance's own mix of its class's
        `variants_per_class` variant components (style / viewpoint of one instance).
      action_motion_weight: float, 0.3. Activation of one random class-agnostic motion component
        (the distractor pool) during each instance: actions contain generic motion too.
      variants_per_class: int, 4. Variant components per class.
      action_strength: float, 0.6. Mean activation of an action inside its segment.
      instance_strength_sigma: float, 0.6. Log-normal sigma of the per-instance strength.
      boundary_ramp_seconds: float, 1.0. Width of the linear ramp centred on each segment boundary.
      ambiguous_strength: float, 0.5. Action strength of THUMOS14 "Ambiguous" segments (class of
        the nearest ground-truth segment of the video).
      context_class_weight: float, 0.5. Share of the context on the class-specific scene component;
        the rest goes to the scene group's component.
      context_background_level: float, 0.5. Context activation everywhere in a video of the class.
      context_near_action_level: float, 0.8. Extra context activation inside a segment, decaying
        as exp(-distance / context_spread_seconds) outside it.
      context_spread_seconds: float, 4.0. Decay length of the near-action context.
      distractor_rate_per_minute: float, 3.0. Poisson rate of motion distractors.
      distractor_seconds: float, 3.0. Mean length of a distractor (exponential).
      distractor_strength: float, 1.0. Activation of a distractor.
      rgb_action_gain: float, 0.5. Gain of action components in the RGB half.
      flow_action_gain: float, 1.0. Gain of action components in the flow half.
      rgb_context_gain: float, 1.0. Gain of context and background components in the RGB half.
      flow_context_gain: float, 0.35. Gain of context and background components in the flow half.
      smooth_noise_std: float, 1.2. Std per feature dimension (before the gains) of the smooth
        nuisance, split evenly over its num_noise_components components.
      temporal_correlation: float, 0.85. AR(1) coefficient per snippet of the smooth nuisance.
      rgb_noise_std: float, 0.35. Per-dimension noise std, RGB half.
      flow_noise_std: float, 0.45. Per-dimension noise std, flow half.
      noise_smoothing: int, 3. The per-dimension noise is a moving average over this many
        snippets (lag-1 correlation (n-1)/n).
      bias: float, -0.1. Pre-activation offset (sets the fraction of zeros after the ReLU).
      scale: float, 0.8. Post-ReLU scale (sets the feature mean, ~0.4).
      num_hashed_groups: int, 20. Groups for datasets without a hand-made grouping (ActivityNet):
        classes are hashed into this many action groups and, independently, scene groups.
    """

    num_background_components: int = 48
    background_components_per_video: int = 3
    background_level: float = 1.0
    num_distractor_components: int = 16
    num_noise_components: int = 32
    component_density: float = 0.3
    action_class_weight: float = 0.45
    action_group_weight: float = 0.25
    action_variant_weight: float = 0.3
    action_motion_weight: float = 0.3
    variants_per_class: int = 4
    action_strength: float = 0.6
    instance_strength_sigma: float = 0.6
    boundary_ramp_seconds: float = 1.0
    ambiguous_strength: float = 0.5
    context_class_weight: float = 0.5
    context_background_level: float = 0.5
    context_near_action_level: float = 0.8
    context_spread_seconds: float = 4.0
    distractor_rate_per_minute: float = 3.0
    distractor_seconds: float = 3.0
    distractor_strength: float = 1.0
    rgb_action_gain: float = 0.5
    flow_action_gain: float = 1.0
    rgb_context_gain: float = 1.0
    flow_context_gain: float = 0.35
    smooth_noise_std: float = 1.2
    temporal_correlation: float = 0.85
    rgb_noise_std: float = 0.35
    flow_noise_std: float = 0.45
    noise_smoothing: int = 3
    bias: float = -0.1
    scale: float = 0.8
    num_hashed_groups: int = 20
