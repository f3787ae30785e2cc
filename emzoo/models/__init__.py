"""emzoo's networks; importing this package registers every ``emzoo_*`` architecture in timm."""

from emzoo.models import hrnet_generator, patchgan, resunet  # noqa: F401  (registers with timm)
from emzoo.models.hrnet_generator import HRNetGenerator
from emzoo.models.patchgan import PatchGAN
from emzoo.models.resunet import ResidualUNet, receptive_field

__all__ = ["HRNetGenerator", "PatchGAN", "ResidualUNet", "receptive_field"]
