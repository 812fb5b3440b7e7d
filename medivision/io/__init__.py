"""Files in and out: one reader and one writer per format (images, DICOM, NIfTI), the intensity policy
(stored values <-> the network's [0, 1]) and where outputs go."""
