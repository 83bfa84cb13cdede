"""Refining a segment of a volume under a linear transform: clicks and slice views are in world space, the
segment is read and written on the volume's grid in the frame the two nodes share."""
from __future__ import annotations

import numpy as np
import pytest
import vtk
from refine_scene import (  # noqa: F401  (fixtures are used by name)
    ClickStampRefiner,
    PancakesInputError,
    RefineLogic,
    ijkToRasMatrix,
    markups,
    masks,
    scene,
    segmentation,
    sliceAxisFromViews,
    volume,
)
from refine_scene import slicer

# A rigid motion that turns the volume's axes well away from where they were (90 degrees about S swaps
# the world directions of I and J) and moves it far further than its own size.
ROTATION_DEGREES = (90.0, 20.0)  # about S, then about R
SHIFT = (140.0, -85.0, 60.0)


def rigid() -> np.ndarray:
    transform = vtk.vtkTransform()
    transform.Translate(*SHIFT)
    transform.RotateZ(ROTATION_DEGREES[0])
    transform.RotateX(ROTATION_DEGREES[1])
    m = transform.GetMatrix()
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def underTransform(scene, matrix: np.ndarray, *nodes):
    """A linear transform node holding ``matrix`` (4 x 4, to parent), set as the parent of ``nodes``."""
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(matrix[r, c]))
    transformNode = slicer.vtkMRMLLinearTransformNode()
    scene.AddNode(transformNode)
    transformNode.SetMatrixTransformToParent(m)
    for node in nodes:
        node.SetAndObserveTransformNodeID(transformNode.GetID())
    return transformNode


def worldRas(volume, matrix, k, j, i):
    """Where voxel (k, j, i) of the transformed volume is in world RAS (the views and markups show it there)."""
    return (matrix @ ijkToRasMatrix(volume) @ np.array([i, j, k, 1.0]))[:3]


def test_a_click_in_world_space_lands_on_its_voxel_of_a_transformed_volume(scene, volume, segmentation):
    matrix = rigid()
    underTransform(scene, matrix, volume, segmentation)
    before = masks(segmentation, volume)
    refiner = ClickStampRefiner()
    logic = RefineLogic(refiner)
    # (3, 14, 7) belongs to L02 and (3, 6, 5) to L01, as in the untransformed test: clicked in world space.
    logic.refine(segmentation, "P01_L01", volume, markups(scene, [worldRas(volume, matrix, 3, 14, 7)]),
                 markups(scene, [worldRas(volume, matrix, 3, 6, 5)]))
    call = refiner.calls[0]
    assert (call["axis"], call["index"]) == (0, 3)
    np.testing.assert_allclose(call["positive"], [(14, 7)], atol=1e-6)
    np.testing.assert_allclose(call["negative"], [(6, 5)], atol=1e-6)
    after = masks(segmentation, volume)
    assert after["P01_L01"][3, 14, 7] and not after["P01_L01"][3, 6, 5] and not after["P01_L02"][3, 14, 7]
    for sid in before:  # nothing but those two voxels changed
        changed = np.argwhere(after[sid] != before[sid])
        assert {tuple(v) for v in changed} <= {(3, 14, 7), (3, 6, 5)}


def test_the_slice_view_gives_the_axis_in_world_space(scene, volume, segmentation):
    matrix = rigid()
    underTransform(scene, matrix, volume, segmentation)
    # A Yellow view on the transformed volume's I = 12 plane, as Slicer shows it.
    world = matrix @ ijkToRasMatrix(volume)
    sliceNode = slicer.vtkMRMLSliceNode()
    sliceNode.SetLayoutName("Yellow")
    scene.AddNode(sliceNode)
    sliceNode.SetSliceToRASByNTP(*world[:3, 0], *world[:3, 1], *worldRas(volume, matrix, 0, 0, 12), 0)
    assert sliceAxisFromViews(scene, volume, worldRas(volume, matrix, 2, 7, 12)) == 2
    refiner = ClickStampRefiner()
    RefineLogic(refiner).refine(segmentation, "P01_L03", volume,
                                markups(scene, [worldRas(volume, matrix, 2, 7, 12), worldRas(volume, matrix, 4, 9, 12)]))
    assert (refiner.calls[0]["axis"], refiner.calls[0]["index"]) == (2, 12)
    assert masks(segmentation, volume)["P01_L03"][[2, 4], [7, 9], [12, 12]].all()


def test_transforms_that_agree_are_one_frame(scene, volume, segmentation):
    matrix = rigid()
    underTransform(scene, matrix, volume)
    underTransform(scene, matrix, segmentation)
    RefineLogic(ClickStampRefiner()).refine(segmentation, "P01_L03", volume,
                                            markups(scene, [worldRas(volume, matrix, 1, 2, 3)]))
    assert masks(segmentation, volume)["P01_L03"][1, 2, 3]


def test_a_segmentation_in_another_frame_is_refused_naming_both(scene, volume, segmentation):
    underTransform(scene, rigid(), volume).SetName("registration")
    before = masks(segmentation, volume)
    with pytest.raises(PancakesInputError, match="'seg' and volume 'rotated' are under different transforms "
                                                 r"\('none' and 'registration'\)"):
        RefineLogic(ClickStampRefiner()).refine(segmentation, "P01_L01", volume,
                                                markups(scene, [worldRas(volume, rigid(), 3, 14, 7)]))
    after = masks(segmentation, volume)
    assert all(np.array_equal(after[sid], before[sid]) for sid in before)


def test_a_non_linear_transform_is_refused_before_the_first_click(scene, volume, segmentation):
    transformNode = slicer.vtkMRMLTransformNode()
    transformNode.SetName("warp")
    scene.AddNode(transformNode)
    spline = vtk.vtkThinPlateSplineTransform()
    source, target = vtk.vtkPoints(), vtk.vtkPoints()
    for p in [(0, 0, 0), (40, 0, 0), (0, 40, 0), (0, 0, 40), (40, 40, 40)]:
        source.InsertNextPoint(p)
        target.InsertNextPoint(p[0] + 2.0, p[1] - 1.0, p[2] * 1.1)
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    spline.SetBasisToR()
    transformNode.SetAndObserveTransformToParent(spline)
    for node in (volume, segmentation):
        node.SetAndObserveTransformNodeID(transformNode.GetID())
    logic = RefineLogic(ClickStampRefiner())
    with pytest.raises(PancakesInputError, match="'rotated' is under a non-linear transform \\('warp'\\); harden it"):
        logic.prepare(volume)
    with pytest.raises(PancakesInputError, match="non-linear transform"):
        logic.refine(segmentation, "P01_L01", volume, markups(scene, [(0.0, 0.0, 0.0)]))
