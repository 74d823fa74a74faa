"""The X-ray landmark model: 68 vertebral corners (T1–L5) on an AP spine radiograph.

``model`` (networks, shape models, level assignment), ``train`` (training from an AASCE-layout
folder), ``weights_io`` (config + weights + model card), ``detector`` (inference on one image).
"""
