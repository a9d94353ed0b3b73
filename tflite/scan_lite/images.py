"""Reading images and fitting them to a model's input, numpy only.

Formats: `.npy` (H x W, H x W x C, or N x H x W x C for data sets), binary and
ASCII PGM/PPM (`P2`, `P3`, `P5`, `P6`) natively; PNG, JPEG and anything else
Pillow reads when Pillow is installed (`pip install scan-lite[images]`).
IDX files (MNIST / Fashion-MNIST, optionally gzipped) and `.npz` for `bench`.

Fitting follows the exporter's training pipeline (`keras_scan.data.resize_images`):
zero-pad in the centre when the size difference is even on both axes, else
resize bilinearly (antialiased when shrinking); grey is repeated to 3
channels, RGB turned grey with weights 0.2989, 0.5870, 0.1140.
"""

import gzip
import pathlib

import numpy as np

NPY_MAGIC = b"\x93NUMPY"
PIL_HINT = "install Pillow (`pip install scan-lite[images]`) or convert to .npy/PGM/PPM"


def read_image(path):
    """Reads one image as a numpy array (H, W, C) of its pixel values 0..255.

    Args:
        path: str or path. `.npy`, `.pgm`, `.ppm`, `.pnm`, or (with Pillow)
            PNG, JPEG and other common formats.

    Returns:
        numpy array of shape (H, W, C), uint8 or float.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`image` does not exist: {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with open(path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
        if magic != NPY_MAGIC:
            raise ValueError(
                f"Cannot read the image {str(path)!r}: not a valid .npy file "
                f"({'empty' if not magic else 'no .npy header'})."
            )
        try:
            image = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(
                f"Cannot read the image {str(path)!r}: not a valid .npy array "
                f"(corrupt, truncated or not numeric: {e})"
            ) from None
    elif suffix in (".pgm", ".ppm", ".pnm"):
        image = read_pnm(path)
    else:
        try:
            from PIL import Image
        except ImportError:
            raise ValueError(
                f"Cannot read {str(path)!r}: {suffix or 'this format'} needs Pillow; "
                f"{PIL_HINT}."
            ) from None
        try:
            with Image.open(path) as im:
                if im.mode == "LA":  # grey with alpha: grey
                    im = im.convert("L")
                elif im.mode not in ("L", "RGB"):
                    im = im.convert("RGB")
                image = np.asarray(im)
        except OSError as e:
            raise ValueError(f"Cannot read the image {str(path)!r}: {e}") from None
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"`image` must be H x W or H x W x C with C in (1, 3, 4). Received: "
            f"{str(path)!r} of shape {image.shape}"
        )
    if image.shape[-1] == 4:
        image = image[..., :3]
    return image


def read_pnm(path):
    """Reads a PGM/PPM (P2, P3, P5, P6) file into (H, W, 1|3) uint8 or uint16."""
    data = pathlib.Path(path).read_bytes()
    tokens, pos = [], 0
    while len(tokens) < 4:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            while pos < len(data) and data[pos : pos + 1] not in (b"\n", b"\r"):
                pos += 1
            continue
        start = pos
        while pos < len(data) and not data[pos : pos + 1].isspace():
            pos += 1
        if start == pos:
            break
        tokens.append(data[start:pos])
    if len(tokens) < 4 or tokens[0] not in (b"P2", b"P3", b"P5", b"P6"):
        raise ValueError(
            f"{str(path)!r} is not a PGM/PPM file (P2, P3, P5 or P6 header)."
        )
    magic = tokens[0]
    try:
        width, height, maxval = (int(t) for t in tokens[1:4])
    except ValueError:
        raise ValueError(f"{str(path)!r} has a malformed PGM/PPM header.") from None
    channels = 3 if magic in (b"P3", b"P6") else 1
    count = width * height * channels
    if magic in (b"P5", b"P6"):
        dtype = np.dtype(">u2") if maxval > 255 else np.uint8
        pixels = np.frombuffer(data, dtype=dtype, count=count, offset=pos + 1)
    else:
        pixels = np.array(data[pos:].split()[:count], dtype=np.int64)
    if pixels.size != count:
        raise ValueError(
            f"{str(path)!r} is truncated: {pixels.size} of {count} values."
        )
    image = pixels.reshape(height, width, channels).astype(np.float64)
    if maxval != 255:
        image = image * (255.0 / maxval)
        return image.astype(np.float32)
    return image.astype(np.uint8)


def write_pnm(path, image):
    """Writes an (H, W), (H, W, 1) or (H, W, 3) uint8 image as binary PGM/PPM."""
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    magic = b"P6" if image.shape[-1] == 3 else b"P5"
    header = magic + f"\n{image.shape[1]} {image.shape[0]}\n255\n".encode()
    pathlib.Path(path).write_bytes(header + image.tobytes())


def _linear_weights(in_size, out_size):
    """(out, in) bilinear weights with half-pixel centres, antialiased shrink."""
    scale = out_size / in_size
    support = max(1.0, in_size / out_size)
    centres = (np.arange(out_size) + 0.5) / scale - 0.5
    dist = np.abs(np.arange(in_size)[None, :] - centres[:, None]) / support
    weights = np.clip(1.0 - dist, 0.0, None)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights.astype(np.float32)


def _convert_channels(x, channels):
    c = x.shape[-1]
    if c == channels:
        return x
    if c == 1:
        return np.repeat(x, channels, axis=-1)
    grey = np.asarray([0.2989, 0.5870, 0.1140], np.float32)
    return (x[..., :3].astype(np.float32) @ grey)[..., None]


def fit_images(x, height, width, channels):
    """Pads or resizes images (N, H, W[, C]) to (N, height, width, channels), float32."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise ValueError(
            "`images` must have shape (N, H, W) or (N, H, W, C) with C in (1, 3, 4). "
            f"Received: shape {x.shape}"
        )
    n, h, w, _ = x.shape
    th, tw = int(height), int(width)
    if th >= h and tw >= w and (th - h) % 2 == 0 and (tw - w) % 2 == 0:
        out = np.zeros((n, th, tw, channels), np.float32)
        top, left = (th - h) // 2, (tw - w) // 2
        out[:, top : top + h, left : left + w] = _convert_channels(
            x.astype(np.float32), channels
        )
        return out
    block = x.astype(np.float32)
    block = np.einsum("sh,bhwc->bswc", _linear_weights(h, th), block, optimize=True)
    block = np.einsum("tw,bswc->bstc", _linear_weights(w, tw), block, optimize=True)
    return _convert_channels(block, channels).astype(np.float32)


def read_idx(path):
    """Reads an IDX file of unsigned bytes (optionally .gz) into a uint8 array."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file does not exist: {str(path)!r}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:  # gzip: bad header, truncated stream, CRC
        raise ValueError(
            f"Cannot read the IDX file {str(path)!r}: corrupt or truncated ({e})"
        ) from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(
            f"{str(path)!r} is not an IDX file of unsigned bytes (bad magic number)."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{str(path)!r} is truncated: its header needs {header} bytes for "
            f"{ndim} dimensions, the file holds {len(raw)}."
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise ValueError(
            f"{str(path)!r} is truncated: its header says {dims} ({expected} bytes), "
            f"the file holds {len(raw)}."
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def read_npz(path):
    """(images, labels) from an .npz with arrays `x`/`images` and `y`/`labels`."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`--npz` file does not exist: {str(path)!r}")
    with np.load(path, allow_pickle=False) as f:
        keys = set(f.files)
        xk = next((k for k in ("x", "images", "x_test") if k in keys), None)
        yk = next((k for k in ("y", "labels", "y_test") if k in keys), None)
        if xk is None or yk is None:
            raise ValueError(
                f"`--npz` must hold arrays 'x' (or 'images') and 'y' (or 'labels'). "
                f"Received: {str(path)!r} with {sorted(keys)}"
            )
        return np.asarray(f[xk]), np.asarray(f[yk]).reshape(-1)
