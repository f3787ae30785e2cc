"""emzoo's networks; importing this package registers every ``emzoo_*`` architecture in timm."""

from emzoo.models import hrnet_generator, patchgan, resunet  # noqa: F401  (registers with timm)
from emzoo.models.hrnet_generator import HRNetGenerator
from emzoo.models.patchgan import PatchGAN
from emzoo.models.resunet import ResidualUNet, measure_receptive_field, receptive_field

__all__ = ["HRNetGenerator", "PatchGAN", "ResidualUNet", "measure_receptive_field", "receptive_field"]
