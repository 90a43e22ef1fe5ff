"""D2-Net's losses (paper Eq. 1-11): pure functions of tensors plus an explicit validity mask.

  discriminative  Eq. 2-4: attention-weighted embeddings, the Eq. 3 pairing and weights, L_Dis
  denoising       Eq. 5-10: pDMI, the bottom-up attention, the snippet and video joint matrices
  variants        the loss variants (`LossConfig.variant`) as objects: terms, statistics, reductions
  batch_losses    all terms of a batch from per-video statistics (one device or gathered replicas)
"""

from d2net_tf.losses.batch_losses import (
    d2net_losses,
    losses_from_statistics,
    per_video_statistics,
    snippet_statistics,
    updated_reference,
)
from d2net_tf.losses.denoising import (
    bottom_up_attention,
    pdmi,
    snippet_joint_matrix,
    snippet_selection,
    video_joint_matrix,
)
from d2net_tf.losses.discriminative import (
    cosine,
    discriminative_loss,
    foreground_background_embeddings,
    foreground_background_weights,
    induced_partner,
    pair_weights,
    random_derangement,
    random_pairing,
    subset_pair_weights,
    top_down_attention,
)
from d2net_tf.losses.variants import VARIANTS, LossVariant, variant_for
