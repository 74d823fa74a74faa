"""Result rows (one dict per row, e.g. from an engine result's `to_dict()`) written into table nodes."""
import numbers

import vtk

import slicer


def _columnArray(values):
    """A VTK array that fits the values of one column: integers, floats, or text.

    A missing value (None) is NaN in a numeric column (never 0, which could read as a result), empty text otherwise.
    """
    present = [value for value in values if value is not None]
    if present and len(present) == len(values) and all(
            isinstance(value, numbers.Integral) and not isinstance(value, bool) for value in present):
        array = vtk.vtkLongLongArray()
    elif present and all(isinstance(value, numbers.Real) and not isinstance(value, bool) for value in present):
        array = vtk.vtkDoubleArray()
    else:
        array = vtk.vtkStringArray()
    array.SetNumberOfValues(len(values))
    for index, value in enumerate(values):
        if isinstance(array, vtk.vtkStringArray):
            if value is None:
                text = ""
            elif isinstance(value, bool):
                text = "yes" if value else "no"
            elif isinstance(value, (list, tuple)):
                text = ", ".join(str(item) for item in value)
            else:
                text = str(value)
            array.SetValue(index, text)
        elif isinstance(array, vtk.vtkDoubleArray):
            array.SetValue(index, float("nan") if value is None else float(value))
        else:
            array.SetValue(index, 0 if value is None else int(value))
    return array


def updateTableFromRows(tableNode, rows, columns=None, titles=None, units=None, descriptions=None):
    """Replace the content of `tableNode` with `rows` (list of dicts; the columns are the keys in order).

    `columns` fixes the first columns (so that a table without rows still has its header);
    `titles`, `units` and `descriptions` map column names to header text, unit labels and tooltips.
    """
    titles = titles or {}
    units = units or {}
    descriptions = descriptions or {}
    columns = list(columns or [])
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    with slicer.util.NodeModify(tableNode):
        tableNode.RemoveAllColumns()
        for name in columns:
            array = _columnArray([row.get(name) for row in rows])
            array.SetName(name)
            tableNode.AddColumn(array)
            tableNode.SetColumnTitle(name, titles.get(name, name))
            if name in units:
                tableNode.SetColumnUnitLabel(name, units[name])
            if name in descriptions:
                tableNode.SetColumnDescription(name, descriptions[name])
        tableNode.SetUseColumnTitleAsColumnHeader(True)
        tableNode.GetTable().Modified()
    return tableNode


def showTable(tableNode):
    """Switch to a layout with a table view and show `tableNode` in it."""
    if not slicer.app.layoutManager():
        return  # no main window (e.g. running without GUI)
    layoutManager = slicer.app.layoutManager()
    layoutManager.setLayout(slicer.modules.tables.logic().GetLayoutWithTable(layoutManager.layout))
    slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
    slicer.app.applicationLogic().PropagateTableSelection()
