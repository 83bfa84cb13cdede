"""Time of one refinement update in the Slicer path, MRML included, on a real scene (slicer-core).

    python benchmarks/bench_refine_update.py [--size 512] [--slices 200] [--clicks 8] [--repeats 3] [--threads 2]

Issue target: on 2 CPU cores, one update (a new point -> the segment on that slice updated)
takes at most 150 ms. bench_inference.py times only the core Refiner; this times what the
Slicer panel runs after each point: RefineLogic.refine reads the markups in RAS, finds the
slice, reads the segment, refines (bundled refiner), writes the segment back and saves an
undo state. The volume is ``--size`` x ``--size`` x ``--slices`` (default a CT-sized
512 x 512 x 200), rotated and anisotropic, with a protocol of 8 labels. Each session places
``--clicks`` points one at a time on one slice (alternately inside and outside the label).
Every update is flip-averaged (four network passes) and, where the label and the points leave most of
the slice out, gets the focus crop's second pass at the slice's own resolution (pancakes.refine.focus_crop),
as in the product, the clicks' geodesic reach (pancakes.refine.geodesic_prior) and the mask's own intensities
(pancakes.refine.intensity_prior); rows marked "one network pass" turn the flip averaging off, rows marked
"without the focus crop" the crop, rows marked "without the geodesic reach" or "without the mask's own
intensities" those, and rows marked "the network as loaded" run it without freezing it for the CPU
(pancakes.refine.frozen). Printed side by side in one process: the core call alone (Refiner.refine_slice_of_volume
with the volume's window computed once, as the logic caches it), the whole update, the
same update through the whole-volume path it replaced (kept here only, to compare), and
the update with propagation to neighbouring slices (which reads and writes the slices within its reach). Rows "with the
label prior" add the kept protocol's labels and confidence bytes on the slice (pancakes.refine.label_prior),
as the panel does for a kept label; the volume's confidence is decoded when the segment is picked, so those
rows time the prior's slicing and arithmetic, not that decode.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RING = 16  # pixels: how far outside label 3 the negative points may fall
sys.path.insert(0, str(ROOT / "PancakesSegment"))


def build_scene(slices: int, size: int = 256):
    """-> (scene, volume node, segmentation node, label array (k, j, i)) with 8 box labels."""
    import SimpleITK as sitk
    import slicer
    from PancakesSegmentLib.Segments import createSegmentationNode, fillSegmentation
    from PancakesSegmentLib.SelfTest import addVolume, rotatedDirection, syntheticImage
    from PancakesSegmentLib.VolumeConversion import imageFromVolumeNode

    shape = (slices, size, size)
    scene = slicer.vtkMRMLScene()
    volume = addVolume(scene, "bench", syntheticImage(shape, (0.8, 0.8, 2.5), rotatedDirection(), (10, -5, 3), seed=1))
    labels = np.zeros(shape, np.uint8)
    s = size / 256  # the boxes cover the same share of the slice at any size
    for n in range(8):  # a 4 x 2 grid of boxes, label n + 1
        r, c = int((30 + 50 * (n // 2)) * s), int((40 + 90 * (n % 2)) * s)
        labels[:, r:r + int(40 * s), c:c + int(70 * s)] = n + 1
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(imageFromVolumeNode(volume))
    segmentation = createSegmentationNode(scene, volume, "bench seg")
    fillSegmentation(segmentation, volume, image, 1, 8, 0)
    return scene, volume, segmentation, labels


def session_points(labels: np.ndarray, k: int, n: int, rng: np.random.Generator):
    """n (k, j, i) voxels on slice k, alternately inside label 3 and just outside it (within RING pixels, as an
    annotator's corrections lie near the label; this keeps the focus crop, pancakes.refine.focus_crop, in play)."""
    from scipy import ndimage

    inside = np.argwhere(labels[k] == 3)
    near = ndimage.binary_dilation(labels[k] == 3, iterations=RING)
    outside = np.argwhere(near & (labels[k] == 0))
    picks = [inside[rng.integers(len(inside))] if c % 2 == 0 else outside[rng.integers(len(outside))] for c in range(n)]
    return [(k, int(j), int(i)) for j, i in picks]


def confidence_bytes(labels: np.ndarray) -> np.ndarray:
    """Stand-in confidence of a protocol, uint8 like Predictor.confidence: sure inside the boxes, unsure outside."""
    rng = np.random.default_rng(1)
    sure, unsure = rng.integers(180, 256, labels.shape), rng.integers(60, 200, labels.shape)
    return np.where(labels > 0, sure, unsure).astype(np.uint8)


def time_updates(scene, volume, segmentation, labels, clicks: int, repeats: int, propagate: bool, rng,
                 whole_volume: bool = False, prepared: list = None, flip_average: bool = True,
                 confidence: np.ndarray = None, focus: bool = True, geodesic: bool = True,
                 intensity: bool = True, frozen: bool = True) -> list:
    """Milliseconds per RefineLogic.refine call over ``repeats`` sessions of ``clicks`` points
    (``whole_volume``: through _whole_volume_logic, the path that slice-only updates replaced).
    With a ``prepared`` list, RefineLogic.prepare runs first (as the panel does when a segment
    is picked) and its milliseconds are appended there. ``flip_average`` False: one network pass per update
    instead of the product's four (pancakes.refine.flip_average). ``confidence``: the protocol's bytes, given with
    ``labels`` as each slice's label prior (RefineLogic.labelPrior). ``focus`` False: no focus crop; ``geodesic``
    False: no geodesic reach; ``intensity`` False: not the mask's own intensities; ``frozen`` False: the network as
    loaded, not frozen for the CPU (pancakes.refine.frozen)."""
    import slicer
    from PancakesSegmentLib.RefineLogic import RefineLogic
    from PancakesSegmentLib.VolumeConversion import ijkToRasMatrix
    from pancakes import Refiner

    refiner = Refiner.load(device="cpu", flip_average=flip_average, focus=focus, geodesic=geodesic,
                           intensity=intensity, frozen=frozen)
    logic = _whole_volume_logic(refiner) if whole_volume else RefineLogic(refiner)
    if confidence is not None:
        # As KeptLabelSeeds.labelPrior: the slice of the protocol's labels and of its confidence bytes.
        logic.labelPrior = lambda node, sid, vol, a, i, current: (np.take(labels, i, a), np.take(confidence, i, a))
    m = ijkToRasMatrix(volume)
    if prepared is not None:
        t0 = time.perf_counter()
        logic.prepare(volume)
        prepared.append(1000 * (time.perf_counter() - t0))
    times = []
    for rep in range(repeats):
        k = labels.shape[0] // 2 + rep
        node = slicer.vtkMRMLMarkupsFiducialNode()
        scene.AddNode(node)
        for n, (kk, j, i) in enumerate(session_points(labels, k, clicks, rng)):
            ras = (m @ np.array([i, j, kk, 1.0]))[:3]
            node.AddControlPoint([float(v) for v in ras], f"F-{n + 1}")
            node.SetNthControlPointDescription(n, "positive" if n % 2 == 0 else "negative")
            t0 = time.perf_counter()
            logic.refine(segmentation, "P01_L03", volume, node, propagate=propagate)
            times.append(1000 * (time.perf_counter() - t0))
        logic.finish()
        scene.RemoveNode(node)
    return times


def _whole_volume_logic(refiner):
    """A RefineLogic whose update (propagate=False) takes the whole-volume path it had before
    slice-only reads and writes; kept here only, to time it next to the new one. It reads the
    whole segment onto the volume grid, copies the volume twice, refines with the whole 3D seed
    (recomputing the intensity window), compares whole volumes, and rebuilds the segment on its
    whole lattice before replacing it (MODE_REPLACE)."""
    import slicer
    import vtk
    from vtk.util import numpy_support
    from PancakesSegmentLib import RefineClicks as rc
    from PancakesSegmentLib import RefineLogic as rl
    from PancakesSegmentLib import SegmentSlabs as slabs
    from PancakesSegmentLib.VolumeConversion import voxelArray

    logic = slicer.vtkSlicerSegmentationsModuleLogic
    resample = slicer.vtkOrientedImageDataResample

    def scalars(image):
        return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())

    def segment_mask(segmentationNode, segmentId, volumeNode):
        segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
        reference = logic.CreateOrientedImageDataFromVolumeNode(volumeNode)
        shape = voxelArray(volumeNode).shape[:3]
        layer = slicer.vtkOrientedImageData()
        if not logic.GetSegmentBinaryLabelmapRepresentation(segmentationNode, segmentId, layer) \
                or layer.GetPointData().GetScalars() is None:
            return np.zeros(shape, bool)
        onGrid = slicer.vtkOrientedImageData()
        resample.ResampleOrientedImageToReferenceOrientedImage(layer, reference, onGrid)
        return scalars(onGrid).reshape(shape) == segment.GetLabelValue()

    def on_grid(reference, mask):
        image = slicer.vtkOrientedImageData()
        image.SetExtent(reference.GetExtent())
        matrix = vtk.vtkMatrix4x4()
        reference.GetImageToWorldMatrix(matrix)
        image.SetImageToWorldMatrix(matrix)
        image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        scalars(image)[:] = np.ascontiguousarray(mask, np.uint8).ravel()
        return image

    def write_segment_mask(segmentationNode, segmentId, volumeNode, mask, axis, slices):
        reference = logic.CreateOrientedImageDataFromVolumeNode(volumeNode)
        slab = np.zeros(mask.shape, bool)
        index = [slice(None)] * 3
        index[axis] = slice(min(slices), max(slices) + 1)
        slab[tuple(index)] = True
        refinedImage, slabImage = on_grid(reference, mask), on_grid(reference, slab)
        current = slicer.vtkOrientedImageData()
        logic.GetSegmentBinaryLabelmapRepresentation(segmentationNode, segmentId, current)
        label = segmentationNode.GetSegmentation().GetSegment(segmentId).GetLabelValue()
        image = slicer.vtkOrientedImageData()
        resample.ResampleOrientedImageToReferenceOrientedImage(refinedImage, current, image, False, True)
        onLattice = {}
        for name, source in (("current", current), ("slab", slabImage)):
            onLattice[name] = slicer.vtkOrientedImageData()
            resample.ResampleOrientedImageToReferenceOrientedImage(source, image, onLattice[name])
        values = scalars(image)
        values[:] = np.where(scalars(onLattice["slab"]) != 0, values != 0, scalars(onLattice["current"]) == label)
        segmentation = segmentationNode.GetSegmentation()
        others = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())
                  if segmentation.GetNthSegmentID(i) != segmentId]
        logic.SetBinaryLabelmapToSegment(image, segmentationNode, segmentId, logic.MODE_REPLACE, None, False, others)

    class WholeVolumeRefineLogic(rl.RefineLogic):
        def refine(self, segmentationNode, segmentId, volumeNode, positiveNode=None, negativeNode=None,
                   axis=None, propagate=False):
            pos, neg, labels = rc.controlPointsRas(positiveNode, split=True)
            if axis is None:
                axis = rc.sliceAxisFromViews(volumeNode.GetScene(), volumeNode, pos + neg)
            voxelArray(volumeNode)  # clicksOnSlice copied the volume to learn its shape
            clicks = rc.clicksOnSlice(volumeNode, pos, neg, axis, labels)
            current = segment_mask(segmentationNode, segmentId, volumeNode)
            key = (segmentationNode.GetID(), segmentId, volumeNode.GetID(), clicks.axis, clicks.index)
            currentSlice = np.take(current, clicks.index, axis=clicks.axis)
            seedSlice = self._seeds.setdefault(key, currentSlice.copy())
            seed = current.copy()
            index = [slice(None)] * 3
            index[clicks.axis] = clicks.index
            seed[tuple(index)] = seedSlice
            refined, logits = self.refiner.refine_volume_slice(
                voxelArray(volumeNode), clicks.axis, clicks.index, seed, clicks.positive, clicks.negative,
                previous=self._previous(key, currentSlice, seedSlice), propagate=propagate,
                spacing=slabs.volumeSpacing(volumeNode), with_logits=True)
            refined = np.asarray(refined, bool)
            self._lastLogits[key] = (logits, np.take(refined, clicks.index, axis=clicks.axis).copy())
            other = tuple(a for a in range(3) if a != clicks.axis)
            changed = [int(i) for i in np.flatnonzero((refined != current).any(axis=other))]
            if changed:
                self._saveForUndo(segmentationNode)
                write_segment_mask(segmentationNode, segmentId, volumeNode, refined, clicks.axis, changed)
            return rl.RefineResult(clicks.axis, clicks.index, changed, int((refined != current).sum()))

    return WholeVolumeRefineLogic(refiner)


def time_core(labels: np.ndarray, clicks: int, repeats: int, rng, flip_average: bool = True,
              confidence: np.ndarray = None, focus: bool = True, geodesic: bool = True,
              intensity: bool = True, frozen: bool = True) -> list:
    """Milliseconds per Refiner.refine_slice_of_volume call on the same volume size (no MRML), the
    volume's intensity window computed once beforehand as RefineLogic caches it; with ``confidence``, each
    call gets the slice's label prior (labels, confidence); ``focus`` False: no focus crop; ``geodesic`` False:
    no geodesic reach; ``intensity`` False: not the mask's own intensities; ``frozen`` False: the network as loaded."""
    from pancakes import Refiner

    refiner = Refiner.load(device="cpu", flip_average=flip_average, focus=focus, geodesic=geodesic,
                           intensity=intensity, frozen=frozen)
    return core_times([refiner], labels, clicks, repeats, rng, confidence)[0]


def core_times(refiners: list, labels: np.ndarray, clicks: int, repeats: int, rng,
               confidence: np.ndarray = None) -> list:
    """time_core for several refiners at once, alternating call by call on the same clicks, so that the
    machine's drift falls on all of them alike -> one list of milliseconds per refiner."""
    vol = np.random.default_rng(0).normal(100, 20, labels.shape).astype(np.float32)
    window = refiners[0].volume_window(vol)
    seed = labels == 3
    times = [[] for _ in refiners]
    for rep in range(repeats):
        k = labels.shape[0] // 2 + rep
        pts = session_points(labels, k, clicks, rng)
        previous = [None] * len(refiners)
        for n in range(1, clicks + 1):
            pos = [(j, i) for c, (_, j, i) in enumerate(pts[:n]) if c % 2 == 0]
            neg = [(j, i) for c, (_, j, i) in enumerate(pts[:n]) if c % 2 == 1]
            prior = None if confidence is None else (labels[k], confidence[k])
            for r, refiner in enumerate(refiners):
                t0 = time.perf_counter()
                previous[r] = refiner.refine_slice_of_volume(vol, 0, k, seed[k], pos, neg, previous[r],
                                                             window=window, label_prior=prior)
                times[r].append(1000 * (time.perf_counter() - t0))
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512, help="rows and columns of each slice (default 512, as a CT)")
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--clicks", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.size < 64 or args.slices < 2 * args.repeats or min(args.clicks, args.repeats) < 1:
        ap.error("use --size 64 or more, --slices at least twice --repeats (sessions start at the middle "
                 "slice), and one click and one repeat or more")
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    scene, volume, segmentation, labels = build_scene(args.slices, args.size)
    print(f"scene: {args.size}x{args.size}x{args.slices} rotated anisotropic volume, 8-label protocol, built in "
          f"{time.perf_counter() - t0:.1f} s; torch threads {args.threads}\n")

    def updates(propagate: bool, whole_volume: bool = False, prepared: list = None, flip_average: bool = True,
                confidence: np.ndarray = None, focus: bool = True, geodesic: bool = True,
                intensity: bool = True, frozen: bool = True) -> list:
        return time_updates(scene, volume, segmentation, labels, args.clicks, args.repeats, propagate,
                            np.random.default_rng(0), whole_volume, prepared, flip_average, confidence, focus,
                            geodesic, intensity, frozen)

    confidence = confidence_bytes(labels)

    prepare_ms: list = []

    rows = [("core Refiner.refine_slice_of_volume (window cached)",
             time_core(labels, args.clicks, args.repeats, np.random.default_rng(0))),
            ("same, without the focus crop (one pass at 128 x 128 instead of two)",
             time_core(labels, args.clicks, args.repeats, np.random.default_rng(0), focus=False)),
            ("same, without the geodesic reach",
             time_core(labels, args.clicks, args.repeats, np.random.default_rng(0), geodesic=False)),
            ("same, without the mask's own intensities",
             time_core(labels, args.clicks, args.repeats, np.random.default_rng(0), intensity=False)),
            ("same, one network pass (flip averaging off)",
             time_core(labels, args.clicks, args.repeats, np.random.default_rng(0), flip_average=False)),
            ("same (four passes), with the label prior",
             time_core(labels, args.clicks, args.repeats, np.random.default_rng(0), confidence=confidence)),
            ("RefineLogic.refine (MRML read + refine + write + undo state): one slice", updates(False)),
            ("same, with the label prior (a kept label, as the panel refines it)", updates(False, confidence=confidence)),
            ("same, with the label prior, without the focus crop", updates(False, confidence=confidence, focus=False)),
            ("same, with the label prior, without the geodesic reach",
             updates(False, confidence=confidence, geodesic=False)),
            ("same, with the label prior, without the mask's own intensities",
             updates(False, confidence=confidence, intensity=False)),
            ("same, with the label prior, the network as loaded (not frozen for the CPU)",
             updates(False, confidence=confidence, frozen=False)),
            ("same, one network pass (flip averaging off)", updates(False, flip_average=False)),
            ("same, after RefineLogic.prepare (the panel calls it when a segment is picked)",
             updates(False, prepared=prepare_ms)),
            ("same, through the former whole-volume path", updates(False, whole_volume=True)),
            ("RefineLogic.refine, propagate=True (the slices within its reach)", updates(True))]
    # The first call also pays one-off costs: the model's first runs, the volume's intensity
    # window, the undo history's first copy of the segmentation.
    print("| one update | calls | first ms | median ms | max ms after the first | within 150 ms |")
    print("|---|---:|---:|---:|---:|---|")
    for name, times in rows:
        rest = max(times[1:], default=times[0])
        verdict = ("yes" if max(times) <= 150 else "after the first" if rest <= 150
                   else "median" if statistics.median(times) <= 150 else "no")
        print(f"| {name} | {len(times)} | {times[0]:.1f} | {statistics.median(times):.1f} | {rest:.1f} | {verdict} |")
    print(f"\nRefineLogic.prepare (model warm-up and intensity window, before the first click): {prepare_ms[0]:.0f} ms")
    # Freezing saves a few ms a pass, less than the drift between rows on a shared machine: time it
    # alternating call by call instead.
    from pancakes import Refiner

    pair = core_times([Refiner.load(device="cpu", frozen=f) for f in (True, False)], labels, args.clicks,
                      args.repeats, np.random.default_rng(0), confidence)
    print("\nthe core call with the label prior, frozen for the CPU or as loaded, alternating call by call "
          f"({len(pair[0])} calls each, the first left out):\n")
    print("| network | median ms | max ms |")
    print("|---|---:|---:|")
    for name, times in zip(("frozen for the CPU (the default)", "as loaded"), pair):
        print(f"| {name} | {statistics.median(times[1:]):.1f} | {max(times[1:]):.1f} |")
    gain = [b - a for a, b in zip(pair[0][1:], pair[1][1:])]
    print(f"\nper call, as loaded minus frozen: median {statistics.median(gain):+.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
