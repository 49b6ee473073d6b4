"""Built-in archs components."""

from __future__ import annotations


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    # -- image-to-image generators and discriminators (unet.py, resnet.py, mobile_resnet.py,
    #    inception.py, patchgan.py); options in options.py (U-Nets, PatchGANs) and
    #    resnet_options.py, imported when a spec names one; code imported only when built.
    tiny_gen = {"ngf": 4, "init_type": "default"}
    tiny_d = {"ndf": 4, "init_type": "default"}
    for name, options, factory, example in (
        ("unet", "options:UNetOptions", "unet:build", {**tiny_gen, "num_downs": 5}),
        (
            "unet_deepest",
            "options:UNetDeepestOptions",
            "unet:build_deepest",
            {**tiny_gen, "num_downs": 5},
        ),
        ("resnet", "resnet_options:ResnetOptions", "resnet:build", {**tiny_gen, "n_blocks": 2}),
        (
            "mobile_resnet",
            "resnet_options:MobileResnetOptions",
            "mobile_resnet:build",
            {**tiny_gen, "n_blocks": 3},
        ),
        (
            "sub_mobile_resnet",
            "resnet_options:SubMobileResnetOptions",
            "mobile_resnet:build_sub",
            {"config": "4_4_8_4_8_8_4_4", "init_type": "default"},
        ),
        (
            "mobile_resnet_deepest",
            "resnet_options:MobileResnetDeepestOptions",
            "mobile_resnet:build_deepest",
            {**tiny_gen, "n_blocks": 3},
        ),
        (
            "inception_resnet",
            "resnet_options:InceptionResnetOptions",
            "inception:build",
            {**tiny_gen, "n_blocks": 3},
        ),
        ("patchgan", "options:PatchGANOptions", "patchgan:build", tiny_d),
        (
            "multiscale_patchgan",
            "options:MultiscalePatchGANOptions",
            "patchgan:build_multiscale",
            {**tiny_d, "n_layers": 2},
        ),
        ("pixel", "options:PixelDiscriminatorOptions", "patchgan:build_pixel", tiny_d),
        (
            "omgd_patchgan",
            "options:OMGDPatchGANOptions",
            "omgd_discriminator:build",
            {**tiny_d, "n_share": 2},
        ),
    ):
        registry.add(
            "arch",
            name,
            options=f"vemkit_plugins.archs.{options}",
            factory=f"vemkit_plugins.archs.{factory}",
            example=example,
        )

    # -- unconditional GANs (sagan.py: GCC's SAGAN; stylegan2.py: CAGC's StyleGAN2).
    tiny_style = {"size": 16, "channels": {4: 16, 8: 16, 16: 8}}
    for name, options, factory, example in (
        (
            "sagan_generator",
            "uncond_options:SAGANGeneratorOptions",
            "sagan:build_generator",
            {"ngf": 8, "z_dim": 16},
        ),
        (
            "sagan_discriminator",
            "uncond_options:SAGANDiscriminatorOptions",
            "sagan:build_discriminator",
            {"ndf": 4},
        ),
        (
            "stylegan2_generator",
            "uncond_options:StyleGAN2GeneratorOptions",
            "stylegan2:build_generator",
            {**tiny_style, "style_dim": 16, "n_mlp": 2},
        ),
        (
            "stylegan2_discriminator",
            "uncond_options:StyleGAN2DiscriminatorOptions",
            "stylegan2:build_discriminator",
            tiny_style,
        ),
    ):
        registry.add(
            "arch",
            name,
            options=f"vemkit_plugins.archs.{options}",
            factory=f"vemkit_plugins.archs.{factory}",
            example=example,
        )
