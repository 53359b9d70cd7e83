"""tf.data for detectors: detection records -> augmented square canvases (single images or 2x2 mosaics) with
their face boxes and five points -> codec targets.

Per folder: decode, cache (data.cache), shuffle, repeat; folders are mixed by weight (a folder of 10,000 single-face
crops must not drown 117 crowd photos). Four images at a time are decoded and padded into one batch; each gets a
random affine map (flip, rotation, scale, placement) into its region of the canvas: the whole canvas, or one of
the 2x2 mosaic tiles split at a random point. The scale is anchored on a random face of the image, whose side on
the canvas is drawn log-uniformly from augment.face_size, because the sources differ wildly in face-to-image ratio
(80-pixel MTFL crops vs 1,024-pixel crowd photos); images without faces fill their region. Boxes follow the map
(a rotated box becomes the extent of its inscribed ellipse, not of its corners, which would grow it by up to 41%),
are clipped to their region and dropped when less than 10% of them stays visible; a face's points are dropped when
one leaves the region. Colour jitter and grey conversion act on the finished canvas. All randomness is stateless
from per-element seeds, so a seed repeats a pipeline exactly.
"""
from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf

from facekit.config import AugmentConfig, DataConfig
from facekit.landmarks import FIVE
from facekit.records import schema
from facekit.records.verify import naming_damaged_shards

AUTOTUNE = tf.data.AUTOTUNE
MIN_VISIBLE = 0.1  # a face less visible than this inside its region is dropped
MAX_UPSCALE = 2.0  # a face is never enlarged more than this: tiny faces blown up are blur, not faces


def detection_files(record_dir: str) -> list[str]:
    schema.load_manifest(record_dir, task="detection")
    return schema.record_files(record_dir)


def count_images(record_dirs: list[str]) -> int:
    return sum(schema.load_manifest(d, task="detection")["num_records"] for d in record_dirs)


def read_scenes(record_dir: str, decode: bool = True):
    """Dataset of parsed detection records of one folder, in file order."""
    return tf.data.TFRecordDataset(detection_files(record_dir)).map(
        lambda s: schema.parse_detection_example(s, decode_image=decode), num_parallel_calls=AUTOTUNE,
        deterministic=True)


def _decoded(example):
    """Encoded record -> (image (H, W, 3) uint8, boxes (F, 4), landmarks (F, 5, 2)) without invalid faces."""
    image = tf.io.decode_image(example["image/encoded"], channels=3, expand_animations=False)
    valid = example["flags"][:, 3] != 1
    return (tf.ensure_shape(image, [None, None, 3]), tf.boolean_mask(example["boxes_xyxy"], valid),
            tf.boolean_mask(example["landmarks_px"], valid))


def mixed_scenes(record_dirs: list[str], data: DataConfig, seed: int):
    """Infinite (image, boxes, landmarks) from the folders, each shuffled and repeated, mixed by folder_weights."""
    weights = list(data.folder_weights) or [1.0] * len(record_dirs)
    if len(weights) != len(record_dirs):
        raise ValueError(f"data.folder_weights has {len(weights)} values for {len(record_dirs)} folders")
    streams = []
    for index, folder in enumerate(record_dirs):
        count = schema.load_manifest(folder, task="detection")["num_records"]
        ds = read_scenes(folder, decode=False).map(_decoded, num_parallel_calls=AUTOTUNE, deterministic=True)
        if data.cache:  # decoded once: JPEG decoding was a fifth of the pipeline's CPU
            ds = ds.cache()
        streams.append(ds.shuffle(min(count, data.shuffle_buffer), seed=seed + index).repeat())
    return streams[0] if len(streams) == 1 else tf.data.Dataset.sample_from_datasets(
        streams, [w / sum(weights) for w in weights], seed=seed)


def _uniform(seed, low=0.0, high=1.0, shape=()):
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def tile_regions(size: int, seed, mosaic_probability: float):
    """(4, 4) xyxy canvas regions: the 2x2 tiles around a random split point (25-75% of the side), or the whole
    canvas followed by three empty regions."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    s = float(size)
    cx, cy = tf.unstack(tf.round(_uniform(seeds[0], 0.25, 0.75, [2]) * s))
    tiles = tf.stack([[0.0, 0.0, cx, cy], [cx, 0.0, s, cy], [0.0, cy, cx, s], [cx, cy, s, s]])
    single = tf.constant([[0.0, 0.0, s, s]] + [[0.0, 0.0, 0.0, 0.0]] * 3)
    return tf.where(_uniform(seeds[1]) < mosaic_probability, tiles, single)


def random_maps(boxes, sizes_hw, regions, seed, config: AugmentConfig):
    """One random affine map per image: source point p -> M (p - c) + t. boxes (4, F, 4) padded with zero rows,
    sizes_hw (4, 2) -> M (4, 2, 2), c (4, 2), t (4, 2), scale (4,), angle (4,), flip (4,) bool."""
    seeds = tf.random.experimental.stateless_split(seed, 7)
    n = 4
    boxes = tf.pad(boxes, [[0, 0], [0, 1], [0, 0]])  # one empty row, so four face-free images still gather
    wh = boxes[..., 2:] - boxes[..., :2]
    exists = (wh[..., 0] > 0) & (wh[..., 1] > 0)
    count = tf.reduce_sum(tf.cast(exists, tf.int32), axis=1)
    order = tf.argsort(tf.cast(exists, tf.int32), axis=1, direction="DESCENDING", stable=True)
    pick = tf.minimum(tf.cast(_uniform(seeds[0], 0.0, 1.0, [n]) * tf.cast(count, tf.float32), tf.int32),
                      tf.maximum(count - 1, 0))
    anchor = tf.gather(boxes, tf.gather(order, pick, batch_dims=1), batch_dims=1)  # (4, 4)
    region_wh = regions[:, 2:] - regions[:, :2]
    region_side = tf.reduce_max(region_wh, axis=1)
    low, high = float(config.face_size[0]), tf.maximum(tf.minimum(float(config.face_size[1]), region_side), 1.0)
    low = tf.minimum(low, high)
    target = tf.exp(_uniform(seeds[1], 0.0, 1.0, [n]) * (tf.math.log(high) - tf.math.log(low)) + tf.math.log(low))
    anchor_wh = anchor[:, 2:] - anchor[:, :2]
    face_scale = tf.minimum(target / tf.sqrt(tf.maximum(anchor_wh[:, 0] * anchor_wh[:, 1], 1.0)), MAX_UPSCALE)
    image_wh = tf.reverse(sizes_hw, axis=[1])
    fill_scale = region_side / tf.reduce_min(image_wh, axis=1) * _uniform(seeds[2], 1.0, 1.5, [n])
    has_face = count > 0
    scale = tf.maximum(tf.where(has_face, face_scale, fill_scale), 1e-3)  # empty regions: any invertible map
    centre = tf.where(has_face[:, None], (anchor[:, :2] + anchor[:, 2:]) / 2, image_wh / 2)
    rotate = _uniform(seeds[3], 0.0, 1.0, [n]) < config.rotation_p
    angle = tf.where(rotate, _uniform(seeds[4], -1.0, 1.0, [n]) * math.radians(config.rotation_deg), 0.0)
    flip = (_uniform(seeds[5], 0.0, 1.0, [n]) < 0.5) & config.flip
    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    mirror = tf.where(flip, -1.0, 1.0)
    matrix = tf.reshape(tf.stack([cos * mirror, -sin, sin * mirror, cos], axis=1), [n, 2, 2])
    placement = regions[:, :2] + _uniform(seeds[6], 0.0, 1.0, [n, 2]) * region_wh
    return matrix, centre, placement, scale, angle, flip


def warp_images(images, matrix, centre, placement, size: int):
    """Render each padded image (4, H, W, 3) uint8 through its map onto a size x size canvas -> (4, S, S, 3)
    float32. ImageProjectiveTransformV3 maps output pixel indices to input indices (pixel centres on integers),
    so the inverse map is conjugated by the half-pixel shift of the continuous convention."""
    inverse = tf.linalg.inv(matrix)
    offset = tf.linalg.matvec(inverse, 0.5 - placement) + centre - 0.5
    transforms = tf.concat([inverse[:, 0, :], offset[:, :1], inverse[:, 1, :], offset[:, 1:],
                            tf.zeros([tf.shape(matrix)[0], 2])], axis=1)
    warped = tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=transforms,
                                                   output_shape=tf.constant([size, size]), fill_value=0.0,
                                                   interpolation="BILINEAR", fill_mode="CONSTANT")
    return tf.cast(warped, tf.float32)


def move_faces(boxes, landmarks, matrix, centre, placement, scale, angle, flip, regions):
    """Boxes (4, F, 4) and landmarks (4, F, 5, 2) through the maps, clipped to their regions -> (4F, 4) boxes
    (zero rows: dropped) and (4F, 5, 2) landmarks (NaN: absent)."""
    half = (boxes[..., 2:] - boxes[..., :2]) / 2
    moved_centre = tf.linalg.matvec(matrix[:, None], (boxes[..., :2] + boxes[..., 2:]) / 2 - centre[:, None]) \
        + placement[:, None]
    cos, sin = tf.abs(tf.cos(angle))[:, None], tf.abs(tf.sin(angle))[:, None]
    half_w = scale[:, None] * tf.sqrt((half[..., 0] * cos) ** 2 + (half[..., 1] * sin) ** 2)
    half_h = scale[:, None] * tf.sqrt((half[..., 0] * sin) ** 2 + (half[..., 1] * cos) ** 2)
    half = tf.stack([half_w, half_h], axis=-1)
    moved = tf.concat([moved_centre - half, moved_centre + half], axis=-1)  # (4, F, 4)
    low, high = regions[:, None, :2], regions[:, None, 2:]
    clipped = tf.concat([tf.clip_by_value(moved[..., :2], low, high), tf.clip_by_value(moved[..., 2:], low, high)],
                        axis=-1)
    area = tf.reduce_prod(moved[..., 2:] - moved[..., :2], axis=-1)
    visible = tf.reduce_prod(clipped[..., 2:] - clipped[..., :2], axis=-1)
    keep = (area > 0) & (visible >= MIN_VISIBLE * area)
    points = tf.einsum("nij,nfkj->nfki", matrix, landmarks - centre[:, None, None]) + placement[:, None, None]
    points = tf.where(flip[:, None, None, None], tf.gather(points, FIVE.flip_permutation, axis=2), points)
    inside = tf.reduce_all((points >= low[:, :, None]) & (points <= high[:, :, None]), axis=[2, 3])
    points = tf.where((keep & inside)[..., None, None], points, np.nan)
    boxes_out = tf.where(keep[..., None], clipped, 0.0)
    return tf.reshape(boxes_out, [-1, 4]), tf.reshape(points, [-1, 5, 2])


def color_jitter(image, seed, config: AugmentConfig):
    """Canvas (S, S, 3) float [0, 255]: brightness, contrast, saturation with probability 0.7; grey."""
    seeds = tf.random.experimental.stateless_split(seed, 6)
    x = image / 255.0
    if config.color_jitter:
        jittered = tf.image.stateless_random_brightness(x, 0.2, seeds[0])
        jittered = tf.image.stateless_random_contrast(jittered, 0.7, 1.3, seeds[1])
        jittered = tf.image.stateless_random_saturation(tf.clip_by_value(jittered, 0.0, 1.0), 0.7, 1.3, seeds[2])
        x = tf.where(_uniform(seeds[3]) < 0.7, jittered, x)
    if config.grey:
        x = tf.where(_uniform(seeds[4]) < config.grey, tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(x)), x)
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def compose_canvas(images, boxes, landmarks, sizes_hw, seed, size: int, config: AugmentConfig) -> dict:
    """Four padded images (4, H, W, 3) uint8 with boxes (4, F, 4), landmarks (4, F, 5, 2), true sizes (4, 2) ->
    {"image": (S, S, 3) float32 [0, 255], "boxes_xyxy": (4F, 4), "landmarks_px": (4F, 5, 2)}."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    regions = tile_regions(size, seeds[0], config.mosaic)
    maps = random_maps(boxes, tf.cast(sizes_hw, tf.float32), regions, seeds[1], config)
    warped = warp_images(images, *maps[:3], size)
    grid = tf.range(size, dtype=tf.float32) + 0.5
    inside_x = (grid[None] >= regions[:, :1]) & (grid[None] < regions[:, 2:3])  # (4, S)
    inside_y = (grid[None] >= regions[:, 1:2]) & (grid[None] < regions[:, 3:4])
    masks = tf.cast(inside_y[:, :, None] & inside_x[:, None, :], tf.float32)[..., None]
    canvas = color_jitter(tf.reduce_sum(warped * masks, axis=0), seeds[2], config)
    moved_boxes, moved_points = move_faces(boxes, landmarks, *maps, regions)
    return {"image": canvas, "boxes_xyxy": moved_boxes, "landmarks_px": moved_points}


def augmented_scenes(record_dirs: list[str], size: int, data: DataConfig, config: AugmentConfig, seed: int):
    """Infinite augmented canvases (see compose_canvas)."""
    if size % 32:
        raise ValueError(f"data.image_size must be a multiple of 32, got {size}")
    scenes = mixed_scenes(record_dirs, data, seed).map(
        lambda image, boxes, marks: (image, boxes, marks, tf.shape(image)[:2]), num_parallel_calls=AUTOTUNE)
    quads = scenes.padded_batch(4, padding_values=(tf.constant(0, tf.uint8), 0.0, float("nan"), 0),
                                drop_remainder=True)
    quads = tf.data.Dataset.zip(quads, tf.data.Dataset.random(seed=seed).batch(2))
    return quads.map(lambda q, s: compose_canvas(*q, s, size, config), num_parallel_calls=AUTOTUNE,
                     deterministic=True)


def training_dataset(record_dirs: list[str], codec, data: DataConfig, config: AugmentConfig, seed: int):
    """Infinite batches of (image (B, S, S, 3) float32 [0, 255], codec targets dict of (B, h, w, C) and
    num_faces (B,))."""
    size = data.image_size

    def encode(scene):
        return scene["image"], codec.encode(scene["boxes_xyxy"], scene["landmarks_px"], size, size)

    ds = augmented_scenes(record_dirs, size, data, config, seed)
    ds = ds.map(encode, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(data.batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def evaluation_scenes(record_dirs: list[str], limit: int | None = None) -> list[dict]:
    """Every image of the folders as numpy: image (H, W, 3) uint8 RGB, boxes_xyxy (F, 4), landmarks_px (F, 5, 2),
    invalid (F,) bool, source_id."""
    scenes = []
    with naming_damaged_shards(record_dirs):
        for folder in record_dirs:
            for example in read_scenes(folder).as_numpy_iterator():
                scenes.append({"image": example["image"], "boxes_xyxy": example["boxes_xyxy"],
                               "landmarks_px": example["landmarks_px"], "invalid": example["flags"][:, 3] == 1,
                               "source_id": example["source_id"].decode()})
                if limit and len(scenes) >= limit:
                    return scenes
    if not scenes:
        raise ValueError(f"no images in {record_dirs}")
    return scenes


def write_mosaic_photos(record_dirs: list[str], root: str, count: int, size: int = 640,
                        face_size: tuple = (32.0, 180.0), seed: int = 0) -> int:
    """Fixed 2x2 mosaics of the folders' images for validation, in RetinaFace's layout (root/images/NAME.jpg,
    root/label.txt): each photo tiles four images at a random split point, each scaled so that one of its faces
    spans face_size pixels (log-uniform), without flips, rotation or colour changes. Turns single-face crops
    into photos whose face sizes resemble a real test set (AFW at 640: 32-214 px). Returns the number of faces."""
    import cv2

    from facekit.records.datasets.wider import retinaface_label_line

    scenes = evaluation_scenes(record_dirs)
    order = np.random.default_rng(seed).permutation(len(scenes))
    if len(order) < 4 * count:
        order = np.resize(order, 4 * count)
    config = AugmentConfig(flip=False, rotation_p=0.0, color_jitter=False, grey=0.0, mosaic=1.0,
                           face_size=tuple(face_size))
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    lines, faces = [], 0
    for index in range(count):
        chosen = [scenes[k] for k in order[4 * index:4 * index + 4]]
        high = np.max([s["image"].shape[:2] for s in chosen], axis=0)
        most = max(len(s["boxes_xyxy"]) for s in chosen)
        images = np.stack([np.pad(s["image"], [(0, high[0] - s["image"].shape[0]),
                                               (0, high[1] - s["image"].shape[1]), (0, 0)]) for s in chosen])
        boxes = np.stack([np.pad(s["boxes_xyxy"], [(0, most - len(s["boxes_xyxy"])), (0, 0)]) for s in chosen])
        marks = np.stack([np.pad(s["landmarks_px"], [(0, most - len(s["landmarks_px"])), (0, 0), (0, 0)],
                                 constant_values=np.nan) for s in chosen])
        sizes = np.array([s["image"].shape[:2] for s in chosen])
        photo = compose_canvas(images, boxes.astype(np.float32), marks.astype(np.float32), sizes, [seed, index],
                               size, config)
        name = f"mosaic_{index:04d}.jpg"
        cv2.imwrite(os.path.join(root, "images", name),
                    cv2.cvtColor(np.uint8(np.round(photo["image"].numpy())), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        real = photo["boxes_xyxy"].numpy()
        real_faces = [(b, m) for b, m in zip(real, photo["landmarks_px"].numpy()) if b[2] > b[0] and b[3] > b[1]]
        lines += [f"# {name}"] + [retinaface_label_line(b, m) for b, m in real_faces]
        faces += len(real_faces)
    with open(os.path.join(root, "label.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return faces
