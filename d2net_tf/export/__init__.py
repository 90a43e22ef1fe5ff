"""Exports of a trained model directory: a TF Serving SavedModel (with in-graph localization),
a TFLite / LiteRT flatbuffer and an ONNX model of the network's `serving_default` outputs.

  saved_model.py  export_saved_model(model_dir, export_dir, ...) -> EXPORT/N
  tflite.py       export_tflite(model_dir, output, ...), convert_network, make_interpreter
  onnx.py         export_onnx(model_dir, output, ...), convert_network, make_session
  file_export.py  restore, convert, write atomically: the part TFLite and ONNX share

The command lines are the thin modules `export/{saved_model,tflite,onnx}.py` of a checkout.
"""
