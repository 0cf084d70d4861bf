"""Issue 34, class 7: an image folder of mixed sizes is one camera's frames: every
readable image is delivered (resized to the first one's size), none counted as corrupt."""

import cv2
import numpy as np

from mvd_edge.match.sources import FrameSource, parse_source


def test_an_image_folder_of_mixed_sizes_drops_nothing(tmp_path, caplog):
    d = tmp_path / "frames"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        h, w = (240, 320) if i < 4 else (480, 640)
        assert cv2.imwrite(str(d / f"{i:04d}.jpg"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    src = FrameSource(parse_source(str(d)), name="ir").start()
    shapes = []
    while True:
        pkt = src.get(timeout=5)
        if pkt is None or isinstance(pkt, bool):
            break
        shapes.append(pkt.image.shape)
    src.stop()
    assert len(shapes) == 20 and set(shapes) == {(240, 320, 3)} and src.stats.corrupt == 0
    assert "0004.jpg is 640x480" in caplog.text and "resized to 320x240" in caplog.text
