"""From a video file to D = 2048 I3D features (RGB + TV-L1 flow), the W-TALC protocol.

Modules (PyAV, OpenCV-contrib and tqdm come with the `video` extra: `pip install -e ".[video]"`):
  protocol     the protocol's constants and snippet arithmetic (25 fps, 16-frame snippets, 224 crop)
  video        decoding with PyAV, resampling to 25 fps, resize + center crop
  flow         TV-L1 optical flow (OpenCV contrib), clipped and scaled to [-1, 1]
  i3d          InceptionI3d as Keras 3 layers, up to Mixed_5c (+ the Kinetics logits)
  convert_i3d  kinetics-i3d TensorFlow checkpoint -> Keras .weights.h5 (command line: d2net_tf.cli.convert_i3d)
  extract      the streaming pipeline video -> [snippets, 2048], and the per-video output layout
"""
