// micronets.h - the micronets Arduino / PlatformIO library.
//
// micronets compiles Keras image classifiers (MobileNet, PhiNet, or your own Keras model) into one
// self-contained C++ header per model, written by the Python package:
//
//     pip install micronets-mcu
//     micronets gen --arch pico --input 32x32x1 --weights best.keras -o model.h
//     micronets gen --arch pico --input 32x32x1 --weights best.keras --sketch MySketch --board nucleo_f446re
//
// A model header needs nothing from this library. This header adds what a sketch needs around a
// model: the library's version, and fitFrame(), which turns a camera frame of any size into the
// uint8 input that a model's predict(const uint8_t*) takes. See examples/Classify and
// docs/device.md. ANSI C++ (C++98 and later); needs only <stdint.h>.
#ifndef MICRONETS_LIBRARY_H
#define MICRONETS_LIBRARY_H

#include <stdint.h>

// the version of this library and of the micronets Python package it belongs to
#define MICRONETS_VERSION "0.1.0"
#define MICRONETS_VERSION_MAJOR 0
#define MICRONETS_VERSION_MINOR 1
#define MICRONETS_VERSION_PATCH 0

namespace micronets {

// Fit a camera frame to a model's input: the largest centred crop of the frame that has the
// input's aspect ratio, resized by nearest neighbour (pixel (x, y) of the input takes the frame
// pixel at crop_x0 + x * crop_width / width, likewise for y).
//
//   frame:  frameWidth x frameHeight x frameChannels uint8 pixels, row-major (one row after another,
//           channels interleaved), 1 (grey) or 3 (RGB) channels
//   input:  width x height x channels uint8 pixels, row-major, 1 or 3 channels; e.g. a buffer of
//           Model::numInputs bytes for a model whose input is height x width x channels
//
// RGB to grey uses the integer luma (77 R + 150 G + 29 B) / 256; grey to RGB repeats the grey
// value. Returns false (and writes nothing) when a size is not positive or a channel count is not
// 1 or 3.
inline bool fitFrame(const uint8_t* frame, int frameWidth, int frameHeight, int frameChannels,
                     uint8_t* input, int width, int height, int channels)
{
    if (frameWidth <= 0 || frameHeight <= 0 || width <= 0 || height <= 0)
        return false;
    if ((frameChannels != 1 && frameChannels != 3) || (channels != 1 && channels != 3))
        return false;
    // the crop: as wide as the frame, or as high, with the input's aspect ratio
    long cropWidth = frameWidth;
    long cropHeight = frameHeight;
    if ((long)frameWidth * height > (long)frameHeight * width)
        cropWidth = (long)frameHeight * width / height;
    else
        cropHeight = (long)frameWidth * height / width;
    const long x0 = (frameWidth - cropWidth) / 2;
    const long y0 = (frameHeight - cropHeight) / 2;
    for (long y = 0; y < height; ++y) {
        const uint8_t* row = frame + (y0 + y * cropHeight / height) * frameWidth * frameChannels;
        for (long x = 0; x < width; ++x) {
            const uint8_t* p = row + (x0 + x * cropWidth / width) * frameChannels;
            if (channels == frameChannels) {
                for (int c = 0; c < channels; ++c)
                    *input++ = p[c];
            } else if (channels == 1) { // RGB -> grey
                *input++ = (uint8_t)((77u * p[0] + 150u * p[1] + 29u * p[2]) >> 8);
            } else { // grey -> RGB
                input[0] = input[1] = input[2] = p[0];
                input += 3;
            }
        }
    }
    return true;
}

} // namespace micronets

#endif // MICRONETS_LIBRARY_H
