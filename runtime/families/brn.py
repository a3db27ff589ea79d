"""``brn``: three-channel contrastive defect segmentation of line-scan strips.

Each sample stacks three aligned acquisitions (Target, Ref1, Ref2); the network
marks what is present in Target and absent from both references.
"""

from runtime._registry import FamilySpec, ImageType, register_family

IMAGE_TYPES = {
    # 9 rows instead of ceil(976/128) = 8 so that neighbouring patches overlap
    # by 22 px and each keeps only its well-supported centre.
    "strip": ImageType("strip", 976, 176, 128, 128, min_rows=9),
    "square": ImageType("square", 256, 256, 256, 256),
    "mvtec": ImageType("mvtec", 1024, 1024, 256, 256),
}

SPEC = register_family(FamilySpec(
    name="brn",
    description="UNet that segments defects present in Target and absent in Ref1 and Ref2",
    input_channels=("target", "ref1", "ref2"),
    image_types=IMAGE_TYPES,
    default_image_type="strip",
    network_factory="training.networks.brn:build_network",
    default_config={"in_channels": 3, "out_channels": 2, "base_width": 64},
))
