"""The PCam patch classifier: data, networks, training, evaluation, prediction.

This package imports TensorFlow; ``wsi`` never does (it loads models through
``model.predict.load_classifier`` inside the commands that need it).
"""
