"""The MCU runtime: .tflite → IR → schedule → memory plan → emulate | C code."""
