"""The tracking service: detections work stream -> ByteTrack per camera -> tracks work stream."""
