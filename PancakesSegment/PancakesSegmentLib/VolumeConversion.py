"""MRML volume nodes <-> SimpleITK images, geometry included.

MRML keeps voxels in (i, j, k) order with an IJK-to-RAS matrix; SimpleITK and
ITK files use LPS. Getting either wrong silently flips or shifts results, so
the conversion lives here, alone, and is tested with a rotated, anisotropic
volume. Parent transforms are not applied: like Slicer's own ITK bridge, the
image is taken in the volume's local coordinates.

Usage::

    image = imageFromVolumeNode(volumeNode)          # SimpleITK, LPS physical space
    labelNode = slicer.vtkMRMLLabelMapVolumeNode()
    updateVolumeNodeFromImage(labelNode, labels)     # voxels and geometry back
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

from pancakes.errors import PancakesInputError

# RAS <-> LPS flips the first two axes; the matrix is its own inverse.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def ijkToRasMatrix(volumeNode) -> np.ndarray:
    """4x4 IJK-to-RAS matrix of a volume node as numpy."""
    m = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def voxelArray(volumeNode) -> np.ndarray:
    """Voxels as a numpy copy in (k, j, i) order, components last when there are several.

    Raises PancakesInputError when the node holds no voxels.
    """
    imageData = volumeNode.GetImageData()
    name = volumeNode.GetName()
    if imageData is None or imageData.GetPointData() is None or imageData.GetPointData().GetScalars() is None:
        raise PancakesInputError(f"{name}: volume has no image data")
    dims = imageData.GetDimensions()
    if 0 in dims or imageData.GetNumberOfPoints() == 0:
        raise PancakesInputError(f"{name}: volume is empty (dimensions {tuple(dims)})")
    scalars = numpy_support.vtk_to_numpy(imageData.GetPointData().GetScalars())
    components = imageData.GetNumberOfScalarComponents()
    shape = (dims[2], dims[1], dims[0]) + ((components,) if components > 1 else ())
    return np.array(scalars.reshape(shape), copy=True)


def imageFromVolumeNode(volumeNode) -> sitk.Image:
    """A volume node as a SimpleITK image with the same voxels and physical placement.

    Multi-component nodes become vector images, so the caller's checks can name
    the problem instead of this function guessing a channel.
    """
    arr = voxelArray(volumeNode)
    components = volumeNode.GetImageData().GetNumberOfScalarComponents()
    image = sitk.GetImageFromArray(arr, isVector=components > 1)
    ijkToRas = ijkToRasMatrix(volumeNode)
    # Image data whose extent does not start at 0 is placed by the extent's first voxel.
    extent = volumeNode.GetImageData().GetExtent()
    firstVoxel = np.array([extent[0], extent[2], extent[4], 1.0])
    originRas = (ijkToRas @ firstVoxel)[:3]
    axesRas = ijkToRas[:3, :3]
    spacing = np.linalg.norm(axesRas, axis=0)
    if np.any(spacing <= 0):
        raise PancakesInputError(f"{volumeNode.GetName()}: volume has zero spacing {tuple(spacing)}")
    directionLps = _RAS_TO_LPS @ (axesRas / spacing)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(v) for v in _RAS_TO_LPS @ originRas])
    image.SetDirection([float(v) for v in directionLps.ravel()])
    return image


def ijkToRasFromImage(image: sitk.Image) -> vtk.vtkMatrix4x4:
    """The IJK-to-RAS matrix that places ``image`` (LPS) in Slicer's RAS space."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.array(image.GetSpacing(), dtype=float)
    axesRas = _RAS_TO_LPS @ direction * spacing  # scales columns
    originRas = _RAS_TO_LPS @ np.array(image.GetOrigin(), dtype=float)
    m = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            m.SetElement(r, c, float(axesRas[r, c]))
        m.SetElement(r, 3, float(originRas[r]))
    return m


def updateVolumeNodeFromImage(volumeNode, image: sitk.Image) -> None:
    """Replace a volume node's voxels and geometry with those of a 3D scalar SimpleITK image."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise PancakesInputError("only 3D scalar images can be put into a volume node")
    arr = sitk.GetArrayFromImage(image)  # (k, j, i)
    imageData = vtk.vtkImageData()
    imageData.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    vtkArray = numpy_support.numpy_to_vtk(np.ascontiguousarray(arr).ravel(), deep=True)
    vtkArray.SetName("ImageScalars")
    imageData.GetPointData().SetScalars(vtkArray)
    volumeNode.SetIJKToRASMatrix(ijkToRasFromImage(image))
    volumeNode.SetAndObserveImageData(imageData)
