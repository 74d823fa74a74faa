"""File and image I/O, one module per kind of file: ``xray`` (radiographs), ``ct`` (CT volumes),
``dicom_series`` (a CT from a folder of DICOM slices), ``dicom`` (DICOM pixel data in any transfer
syntax), ``landmark_files`` (corner landmarks), ``aasce`` (AASCE-layout folders), ``atomic`` (outputs
written completely or not at all), ``dicom_out`` (results saved as DICOM SEG and Secondary Capture).

Readers turn every format into one shape and refuse unsuitable input with a one-line
``ImageReadError`` or ``LandmarkError`` that names the file, so the engine never sees a colour
photo, a CT handed in as a radiograph, or a half-written file.
"""
