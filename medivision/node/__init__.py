"""The DICOM node under medivision.serve: the spool, the Storage SCP that fills it, and the worker that enhances
complete series and sends them on. It uses io/ and inference/; nothing uses it."""
