"""Small synthetic DICOM files written with pydicom, one tag family each (tests only)."""

from __future__ import annotations

import numpy as np


def write_dicom(path, pixels, *, bits_stored=12, signed=False, photometric="MONOCHROME2", frames=1,
                pixel_data=True, **tags):
    """``pixels`` (H, W) (or (F, H, W)) integers stored as 16-bit little-endian, plus ``tags``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    if pixel_data:
        arr = np.asarray(pixels)
        ds.Rows, ds.Columns = arr.shape[-2:]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = 1 if signed else 0
        if frames != 1:
            ds.NumberOfFrames = frames
        ds.PixelData = arr.astype("<i2" if signed else "<u2").tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(str(path), enforce_file_format=True)
    return path
