"""Headless Slicer views for tests: a slice view (and a 3D view) rendered offscreen
with Slicer's own logics and displayable managers, assembled the way
qMRMLLayoutManager / qMRMLSliceWidget / qMRMLThreeDWidget assemble them, minus Qt.

What is on screen is therefore what Slicer would draw: the slice logic's blended
layers, segmentation fill and outline, markups glyphs and labels, model intersections.
Needs slicer-core (``import slicer``). Without a display VTK must render through EGL,
so ``VTK_DEFAULT_OPENGL_WINDOW`` (read each time a render window is made) defaults to
``vtkEGLRenderWindow`` here; set it beforehand to pick another window class.
"""

import os

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import numpy as np
import slicer
import vtk
from PIL import Image
from vtk.util.numpy_support import vtk_to_numpy

# qMRMLSliceView's own list, then those the Colors, Segmentations, Markups and
# Transforms modules add to the slice factory when Slicer starts.
SLICE_DISPLAYABLE_MANAGERS = (
    "vtkMRMLVolumeGlyphSliceDisplayableManager",
    "vtkMRMLModelSliceDisplayableManager",
    "vtkMRMLCrosshairDisplayableManager",
    "vtkMRMLOrientationMarkerDisplayableManager",
    "vtkMRMLRulerDisplayableManager",
    "vtkMRMLScalarBarDisplayableManager",
    "vtkMRMLColorLegendDisplayableManager",
    "vtkMRMLSegmentationsDisplayableManager2D",
    "vtkMRMLMarkupsDisplayableManager",
    "vtkMRMLTransformsDisplayableManager2D",
    "vtkMRMLLinearTransformsDisplayableManager",
)
# qMRMLThreeDView's own list, then the modules' additions (volume rendering left out:
# its GPU mapper is not what these tests look at).
THREED_DISPLAYABLE_MANAGERS = (
    "vtkMRMLCameraDisplayableManager",
    "vtkMRMLViewDisplayableManager",
    "vtkMRMLModelDisplayableManager",
    "vtkMRMLThreeDReformatDisplayableManager",
    "vtkMRMLCrosshairDisplayableManager3D",
    "vtkMRMLOrientationMarkerDisplayableManager",
    "vtkMRMLRulerDisplayableManager",
    "vtkMRMLColorLegendDisplayableManager",
    "vtkMRMLSegmentationsDisplayableManager3D",
    "vtkMRMLMarkupsDisplayableManager",
    "vtkMRMLTransformsDisplayableManager3D",
    "vtkMRMLLinearTransformsDisplayableManager",
)


def registerDisplayableManagers(factory, names):
    """Register in ``factory`` those of ``names`` this slicer-core build has; returns those registered.
    The factory is a process-wide singleton, so registering twice is skipped."""
    for name in names:
        if hasattr(slicer, name) and not factory.IsDisplayableManagerRegistered(name):
            factory.RegisterDisplayableManager(name)
    return [name for name in names if factory.IsDisplayableManagerRegistered(name)]


class _OffscreenView:
    """Render window + renderer + displayable manager group, as ctkVTKAbstractView and
    qMRMLSliceView / qMRMLThreeDView set them up, but never shown."""

    def __init__(self, factory, managerNames, appLogic, size):
        self.size = (int(size[0]), int(size[1]))
        self.renderer = vtk.vtkRenderer()
        self.renderWindow = vtk.vtkRenderWindow()
        self.renderWindow.SetOffScreenRendering(1)
        self.renderWindow.SetMultiSamples(0)
        self.renderWindow.SetSize(*self.size)
        self.renderWindow.AddRenderer(self.renderer)
        # Never started, but the displayable managers dereference it: without one, a
        # render with markups in the scene segfaults.
        self.interactor = vtk.vtkRenderWindowInteractor()
        self.interactor.SetRenderWindow(self.renderWindow)
        self.interactor.SetInteractorStyle(None)
        factory.SetMRMLApplicationLogic(appLogic)
        registerDisplayableManagers(factory, managerNames)
        self.group = slicer.vtkMRMLDisplayableManagerGroup()
        self.group.Initialize(factory, self.renderer)

    def grab(self):
        """Render and return the window's pixels, shape (height, width, 3), top row first."""
        self.renderWindow.Render()
        grabber = vtk.vtkWindowToImageFilter()
        grabber.SetInput(self.renderWindow)
        grabber.SetInputBufferTypeToRGB()
        grabber.ReadFrontBufferOff()
        grabber.Update()
        image = grabber.GetOutput()
        width, height, _ = image.GetDimensions()
        pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, 3)
        return np.ascontiguousarray(pixels[::-1])

    def close(self):
        """Detach the managers from MRML and release the GL context, so that many views
        made one after another in one process neither pile up observers nor contexts."""
        self.group.SetMRMLDisplayableNode(None)
        self.renderer.RemoveAllViewProps()
        self.renderWindow.Finalize()
        self.interactor.SetRenderWindow(None)


def _nodeID(node):
    return node.GetID() if node is not None else None


def renderSliceView(scene, appLogic, viewName="Red", orientation="Axial", background=None, foreground=None,
                    foregroundOpacity=0.5, label=None, size=(600, 600), sliceOffset=None, fieldOfView=None,
                    center=None, rotateToVolumePlane=False):
    """Render the slice view ``viewName`` as Slicer would show it; returns (H, W, 3) uint8.

    ``orientation`` is a slice orientation preset; ``rotateToVolumePlane`` then turns the
    slice onto the lowest layer volume's own axes (its single plane for a 2D image), as
    Slicer does when it shows a single-slice volume. The view is fitted to the background
    (or all layers); ``fieldOfView`` (mm shown across the shorter side), ``center`` (RAS
    point put in the middle of the view and on the slice) and ``sliceOffset`` override it.
    The slice and composite nodes stay in the scene, like Slicer's view nodes do.
    """
    for volume in (background, foreground, label):
        display = volume.GetDisplayNode() if volume is not None else None
        if display is not None and display.IsA("vtkMRMLScalarVolumeDisplayNode") and display.GetColorNode() is None:
            # Otherwise the layer is silently black: the volumes logic could not give it a
            # colour table because no "Colors" module logic was registered in appLogic.
            raise ValueError(f"volume {volume.GetName()!r} has no colour node; register a vtkMRMLColorLogic "
                             "as appLogic.SetModuleLogic('Colors', ...) before loading volumes")
    view = _OffscreenView(slicer.vtkMRMLSliceViewDisplayableManagerFactory.GetInstance(),
                          SLICE_DISPLAYABLE_MANAGERS, appLogic, size)
    logic = slicer.vtkMRMLSliceLogic()
    logic.SetMRMLApplicationLogic(appLogic)
    sliceLogics = appLogic.GetSliceLogics()
    if sliceLogics is not None:
        sliceLogics.AddItem(logic)
    logic.SetDisplayableManagerGroup(view.group)
    logic.SetMRMLScene(scene)
    try:
        # AddSliceNode would hand back a new node even when the singleton exists already.
        sliceNode = scene.GetSingletonNode(viewName, "vtkMRMLSliceNode") or logic.AddSliceNode(viewName)
        logic.SetSliceNode(sliceNode)
        # The CTK lightbox manager's part in qMRMLSliceView: the blended RGBA slice as a
        # 2D background actor (colours already mapped by the volume display nodes). It must
        # be the renderer's first prop, as in CTK: drawn after the segmentation fill, it
        # would lose the depth test there and leave the fill over black.
        mapper = vtk.vtkImageMapper()
        mapper.SetColorWindow(255)
        mapper.SetColorLevel(127.5)
        actor = vtk.vtkActor2D()
        actor.SetMapper(mapper)
        actor.GetProperty().SetDisplayLocationToBackground()
        view.renderer.AddViewProp(actor)
        view.renderer.GetActiveCamera().ParallelProjectionOn()
        view.group.SetMRMLDisplayableNode(sliceNode)

        composite = logic.GetSliceCompositeNode()
        composite.SetBackgroundVolumeID(_nodeID(background))
        composite.SetForegroundVolumeID(_nodeID(foreground))
        composite.SetForegroundOpacity(foregroundOpacity)
        composite.SetLabelVolumeID(_nodeID(label))

        width, height = view.size
        logic.ResizeSliceNode(width, height)
        sliceNode.SetOrientation(orientation)
        if rotateToVolumePlane:
            logic.RotateSliceToLowestVolumeAxes(True)
        if background is not None:
            logic.FitSliceToBackground(width, height)
        else:
            logic.FitSliceToAll(width, height)
        if fieldOfView is not None:
            scale = fieldOfView / min(width, height)
            sliceNode.SetFieldOfView(width * scale, height * scale, sliceNode.GetFieldOfView()[2])
        if center is not None:
            sliceNode.JumpSliceByCentering(*center)
        if sliceOffset is not None:
            logic.SetSliceOffset(sliceOffset)
        mapper.SetInputConnection(logic.GetImageDataConnection())
        return view.grab()
    finally:
        view.close()
        if sliceLogics is not None:
            sliceLogics.RemoveItem(logic)
        # The logic's "<view> Volume Slice" model, display and transform nodes: Slicer
        # removes them when the widget's logic dies with the scene still set.
        logic.DeleteSliceModel()
        logic.SetMRMLScene(None)


def saveSliceView(path, scene, appLogic, **kwargs):
    """renderSliceView (same keyword arguments) written to ``path`` as PNG; returns the pixels."""
    pixels = renderSliceView(scene, appLogic, **kwargs)
    Image.fromarray(pixels).save(path)
    return pixels


def rasToViewPixel(sliceNode, ras, size):
    """(column, row) of RAS point ``ras`` in a picture of ``size`` (width, height) returned
    by renderSliceView for ``sliceNode``, row 0 at the top; the inverse of XYToRAS."""
    rasToXY = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Invert(sliceNode.GetXYToRAS(), rasToXY)
    x, y, _, _ = rasToXY.MultiplyPoint((*ras, 1.0))
    return int(round(x)), int(round(size[1] - 1 - y))


def renderThreeDView(scene, appLogic, viewName="1", size=(600, 600), direction="Anterior", boxVisible=False):
    """Render the 3D view ``viewName`` (models, segmentations, markups); returns (H, W, 3) uint8.

    The camera looks from ``direction`` (a vtkMRMLCameraNode axis name: Left, Right,
    Anterior, Posterior, Superior, Inferior) and is reset to the visible content, as
    Slicer's "center view" button does; the bounding box is hidden unless ``boxVisible``.
    """
    view = _OffscreenView(slicer.vtkMRMLThreeDViewDisplayableManagerFactory.GetInstance(),
                          THREED_DISPLAYABLE_MANAGERS, appLogic, size)
    view.renderer.SetUseDepthPeeling(True)
    logic = slicer.vtkMRMLViewLogic()
    logic.SetMRMLApplicationLogic(appLogic)
    logic.SetName(viewName)
    logic.SetMRMLScene(scene)
    viewLogics = appLogic.GetViewLogics()
    if viewLogics is not None:
        viewLogics.AddItem(logic)
    logic.SetDisplayableManagerGroup(view.group)
    try:
        viewNode = scene.GetSingletonNode(viewName, "vtkMRMLViewNode") or logic.AddViewNode(viewName)
        viewNode.SetBoxVisible(boxVisible)
        viewNode.SetAxisLabelsVisible(boxVisible)
        view.group.SetMRMLDisplayableNode(viewNode)
        cameraNode = view.group.GetDisplayableManagerByClassName("vtkMRMLCameraDisplayableManager").GetCameraNode()
        cameraNode.RotateTo(getattr(slicer.vtkMRMLCameraNode, direction))
        view.renderer.ResetCamera()
        view.renderer.ResetCameraClippingRange()
        return view.grab()
    finally:
        view.close()
        if viewLogics is not None:
            viewLogics.RemoveItem(logic)
        logic.SetMRMLScene(None)


def saveThreeDView(path, scene, appLogic, **kwargs):
    """renderThreeDView (same keyword arguments) written to ``path`` as PNG; returns the pixels."""
    pixels = renderThreeDView(scene, appLogic, **kwargs)
    Image.fromarray(pixels).save(path)
    return pixels
