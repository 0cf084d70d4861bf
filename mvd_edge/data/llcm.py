"""LLCM (Low-Light Cross-Modality, Zhang & Wang, CVPR 2023) loader.

Layout, as read by the LLCM authors' code (``ZYK100/LLCM``, ``DEEN/data_loader.py``
and ``data_manager.py``)::

    root/
      idx/
        train_vis.txt  train_nir.txt  test_vis.txt  test_nir.txt   ``relative/path label``
        test_id.txt                                              comma-separated test ids
      test_vis/cam1..cam9/<pid:04d>/<pid>_c0<cam>_s<..>_f<..>_vis.jpg
      test_nir/cam1,2,4..9/<pid:04d>/<pid>_c0<cam>_s<..>_f<..>_nir.jpg
      ... (training images, wherever the train_*.txt paths point)

File names look like ``0003_c01_s185734_f3195_nir.jpg``: identity, ``_c<NN>_`` camera,
scene/frame, modality. The camera is parsed from that ``_c<NN>_`` token, or failing
that from a ``cam<N>`` folder in the path. LLCM's nine cameras record both modalities
(camera 3 has no infrared test images), so ``cam`` numbers are shared across modalities
and the LLCM metric removes same-identity same-camera gallery items.

This loader reads the four ``idx/*.txt`` lists (the authors' evaluation scans the
``test_vis``/``test_nir`` folders of the ``test_id.txt`` identities instead; the lists
cover the same images). ``pid`` is the index label; as with RegDB the train and test
label ranges may overlap, so test pids are shifted by ``TEST_PID_OFFSET``.
"""

from __future__ import annotations

import re
from pathlib import Path

from mvd_edge.core.modality import Modality
from mvd_edge.data.base import DatasetError, ReidDataset, Sample, load_index_lists, read_index_file

__all__ = ["load_llcm", "parse_llcm_camera"]

_CAM_IN_NAME = re.compile(r"_c(\d+)_")
_CAM_FOLDER = re.compile(r"cam(\d+)")
_PID_IN_NAME = re.compile(r"^(\d+)_c\d+_")

_LISTS: tuple[tuple[str, Modality], ...] = (("vis", Modality.VISIBLE), ("nir", Modality.INFRARED))


def parse_llcm_camera(rel_path: str) -> int | None:
    """Camera number of an LLCM image path (``_c<NN>_`` in the name, else ``cam<N>/``)."""
    *folders, name = rel_path.replace("\\", "/").split("/")
    m = _CAM_IN_NAME.search(name)
    if m:
        return int(m.group(1))
    for part in reversed(folders):
        m = _CAM_FOLDER.fullmatch(part)
        if m:
            return int(m.group(1))
    return None


def _read(root: Path, split: str, pid_offset: int) -> list[Sample]:
    samples: list[Sample] = []
    name_pid_to_label: dict[int, int] = {}
    label_to_name_pid: dict[int, int] = {}
    for word, modality in _LISTS:
        index = root / "idx" / f"{split}_{word}.txt"
        for rel, label in read_index_file(index, f"LLCM {split} {word} index"):
            cam = parse_llcm_camera(rel)
            if cam is None or cam < 1:
                raise DatasetError(f"{index}: cannot read a camera number from {rel!r} "
                                   "(expected '_c<NN>_' in the file name or a 'cam<N>' folder)")
            # Guard: the labels of the vis and nir lists must name the same people.
            m = _PID_IN_NAME.match(rel.replace("\\", "/").rsplit("/", 1)[-1])
            if m:
                name_pid = int(m.group(1))
                if (name_pid_to_label.setdefault(name_pid, label) != label
                        or label_to_name_pid.setdefault(label, name_pid) != name_pid):
                    raise DatasetError(f"{index}: label {label} of {rel!r} disagrees with the labels of other "
                                       f"images of identity {name_pid} in the LLCM {split} lists")
            samples.append(Sample(path=root / rel.lstrip("/"), pid=label + pid_offset, cam=cam, modality=modality))
    return samples


def load_llcm(root: Path, val_fraction: float = 0.1, seed: int = 0) -> ReidDataset:
    """Load LLCM (layout in the module docstring), holding out ``val_fraction`` of the training identities
    as ``val`` (seeded; 0: none).

    Train pids are the index labels, test pids the labels + ``TEST_PID_OFFSET``; ``cam`` is LLCM's camera
    number (1..9); ``meta`` has ``root``, ``test_pid_offset``, ``val_fraction`` and ``seed``.
    :class:`DatasetError` for a missing index file or listed image (the message names the path), a
    malformed line, or inconsistent labels.
    """
    return load_index_lists("llcm", root, "LLCM", _read, val_fraction, seed)
