"""MTCNN's cascade trained here: Keras stage networks for the cascade and their export (networks), the multi-task
loss (loss), training windows mined from detection records (samples) and the stage trainer (training)."""
