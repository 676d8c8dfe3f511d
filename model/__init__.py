"""The PCam patch classifier a user runs.

Cards, the bundled models, TTA, the Keras and int8 OpenVINO runtimes;
``model.training`` holds the recipe that made them.

This package imports TensorFlow; ``wsi`` never does (it loads models through
``model.predict.load_classifier`` inside the commands that need it).
"""
