"""``emzoo predict``: parse, one library call (:func:`emzoo.inference.files.predict_files`), print."""

from __future__ import annotations

import json


def _auto_or_number(flag: str, text: str, expected: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        from emzoo.errors import ConfigError

        raise ConfigError(f"{flag} {text!r}: expected 'auto' or {expected}") from None


def _cmd_predict(args) -> None:
    from emzoo.hub import load
    from emzoo.inference.files import FileOptions, predict_files
    from emzoo.inference.predictor import Predictor

    if args.model == "":
        from emzoo.errors import ConfigError

        raise ConfigError("--model '': expected a zoo name, hf-hub:ORG/NAME or a model folder")
    options = FileOptions(
        pixel_size=args.pixel_size,
        frames=args.frames,
        png=args.png,
        min_area_nm2=args.min_area_nm2,
        split_touching=not args.no_split,
        exclude_border=args.exclude_border,
        overwrite=args.overwrite,
        skip_bad=args.skip_bad,
        scale=_auto_or_number("--scale", args.scale, "a zoom factor such as 0.5"),
    )
    predictor = Predictor(
        load(args.model, device=args.device),
        args.tile,
        args.overlap,
        args.batch_size,
        output=args.output,
        engine=args.engine,
        precision=args.precision,
        scale=options.scale,
        mirror_border=None if args.border is None else args.border == "mirror",
        polarity=args.polarity,
        level=args.level,
        peak=_auto_or_number("--peak", args.peak, "a probability in [0.5, 1)"),
    )  # checks every argument before any image is read
    report = predict_files(predictor, args.inputs, args.output_dir, options, progress=not args.quiet)
    print(json.dumps(dict(report.to_dict(), precision=predictor.precision), indent=2))


def add_commands(sub) -> None:
    p = sub.add_parser("predict", help="run a model over images or folders (tiled, any size)")
    p.add_argument("inputs", nargs="+", help="image files or folders (PNG/TIFF/MRC/DM3/DM4/EMD/SER/NPY)")
    p.add_argument("--model", required=True, help="zoo name, hf-hub:ORG/NAME, or a folder")
    p.add_argument("--output-dir", required=True, help="a separate folder for the results")
    p.add_argument("--tile", type=int, help="tile size in pixels (default from the receptive field; 0: whole image)")
    p.add_argument("--overlap", type=int, help="tile overlap in pixels (default from the receptive field)")
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default: up to 4, memory-bounded)")
    p.add_argument(
        "--engine",
        default="torch",
        choices=("torch", "onnxruntime"),
        help="onnxruntime: faster on CPU, exported once and cached",
    )
    p.add_argument("--output", default="auto", choices=("auto", "probability", "mask", "logits"))
    p.add_argument(
        "--frames",
        default="each",
        choices=("each", "mean"),
        help="stacks (MRC/TIFF/DM/EMD): predict each frame and write a stack (default), or their mean",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "float32", "bfloat16"),
        help="auto: bf16 where measured faster here and within 2%% of float32 for this model",
    )
    p.add_argument("--png", action="store_true", help="also write an 8-bit PNG preview")
    p.add_argument("--pixel-size", type=float, help="nm per pixel (default: from the file)")
    p.add_argument(
        "--scale",
        default="auto",
        help="working scale: 'auto' (segmentation: where the particles are the size the model was trained on; "
        "restoration: the pixel size brought into the model's range) or a zoom factor (0.5 halves the image); "
        "results always come back at the input's size",
    )
    p.add_argument(
        "--border",
        choices=("mirror", "zero"),
        help="context beyond the image edge: mirrored (finds particles cut by the border) or the network's "
        "zero padding (no false particles along the seam a mirror makes in a lattice); default: the one the "
        "checkpoint was calibrated to on its validation split (its card says which)",
    )
    p.add_argument(
        "--polarity",
        default="auto",
        choices=("auto", "as-is", "inverted"),
        help="segmentation: invert an image whose particles have the other contrast than the model's "
        "(auto: when the image's intensities and the model agree; reported in the summary)",
    )
    p.add_argument(
        "--level",
        default="auto",
        choices=("auto", "off", "plane"),
        help="segmentation: plane = a second pass on the image less the plane fitted under the first pass's "
        "background (uneven illumination, a thickness gradient: no ramp called particle); auto: as the checkpoint "
        "was calibrated (its card says which)",
    )
    p.add_argument(
        "--peak",
        default="auto",
        help="segmentation: keep a region called particle only where its probability reaches this somewhere "
        "(0.5: keep every region); auto: as the checkpoint was calibrated (its card says which)",
    )
    p.add_argument("--min-area-nm2", type=float, help="smallest particle kept (default: 0.4 nm across)")
    p.add_argument("--exclude-border", action="store_true", help="drop particles cut by the image border")
    p.add_argument("--no-split", action="store_true", help="do not split touching particles (watershed)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable files and report them")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in --output-dir")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_predict)
