"""Public architectures, built in Keras 3 (functional) from their published definitions.

Each builder is a plain function of the architecture's hyperparameters that returns an
uncompiled ``keras.Model`` with random (Keras default) weights: nothing here downloads weights
(``weights=None`` everywhere). The code is written from the papers and the reference
implementations named in each docstring; where the conformance suite needs a smaller model than
the published one (to keep export + g++ + comparison fast), only widths or the input size are
reduced, never the structure, and the builder's defaults are the published values unless noted.

``MODELS`` lists the configurations the conformance suite (tests/test_conformance.py) and the
benchmark (benchmarks/conformance.py) run: name -> (builder, keyword arguments, options), where the
options tell the checker how to judge the outputs (``regression``: the outputs are not class
scores, so only their variation across inputs is asserted; ``input_range``: the inputs' scale;
``tries``: how many random weight seeds to try for a well-conditioned net).
"""

from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple


def _keras():
    import keras
    from keras import layers

    return keras, layers


# --------------------------------------------------------------------------- MLPerf Tiny v1
def resnet8(input_shape=(32, 32, 3), num_classes=10, filters=16):
    """MLPerf Tiny v1 image classification reference (CIFAR-10): ResNet-8, ``resnet_v1_eembc``.

    Source: mlcommons/tiny, benchmark/training/image_classification/keras_model.py (v0.1/v1.0
    reference, 16/32/64 filters). Conv3x3 + BN + ReLU stem; three stacks of two Conv3x3 + BN with
    a residual add (stack 1: identity; stacks 2 and 3: stride 2 and a strided 1x1 conv shortcut);
    AveragePooling over the whole map, Flatten, Dense softmax.
    """
    keras, layers = _keras()
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(filters, 3, strides=1, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    for stack, mult in enumerate((1, 2, 4)):
        n = filters * mult
        stride = 1 if stack == 0 else 2
        y = layers.Conv2D(n, 3, strides=stride, padding="same")(x)
        y = layers.BatchNormalization()(y)
        y = layers.Activation("relu")(y)
        y = layers.Conv2D(n, 3, strides=1, padding="same")(y)
        y = layers.BatchNormalization()(y)
        if stack > 0:  # adjust the identity path to the new size and width
            x = layers.Conv2D(n, 1, strides=2, padding="same")(x)
        x = layers.add([x, y])
        x = layers.Activation("relu")(x)
    pool = int(min(x.shape[1:3]))
    x = layers.AveragePooling2D(pool_size=pool)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="resnet8")


def mobilenet_v1_vww(input_shape=(96, 96, 3), num_classes=2, alpha=0.25):
    """MLPerf Tiny v1 visual wake words reference: MobileNetV1 with width multiplier 0.25.

    Source: mlcommons/tiny, v0.1/benchmarks/visual_wake_words/vww_model.py (from Silicon Labs'
    ``mobilenet_v1_eembc``): Conv3x3/2 (32 x alpha filters) + BN + ReLU, then 13 depthwise
    separable blocks (DepthwiseConv3x3 + BN + ReLU, Conv1x1 + BN + ReLU; strides 1,2,1,2,1,2,
    1x5,2,1; widths doubling at each stride, as in Howard et al. 2017), AveragePooling over the
    whole map, Flatten, Dense softmax. Plain ReLU and 'same' padding, as the reference (not ReLU6
    and ZeroPadding2D, as keras.applications.MobileNet).
    """
    keras, layers = _keras()
    inputs = keras.Input(shape=input_shape)
    n = int(32 * alpha)
    x = layers.Conv2D(n, 3, strides=2, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    # (stride, width multiplier) of the 13 depthwise separable layers
    plan = [(1, 2), (2, 2), (1, 1), (2, 2), (1, 1), (2, 2)] + [(1, 1)] * 5 + [(2, 2), (1, 1)]
    for stride, grow in plan:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        n *= grow
        x = layers.Conv2D(n, 1, strides=1, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    x = layers.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v1_vww")


def ds_cnn(input_shape=(49, 10, 1), num_classes=12, filters=64, blocks=4):
    """MLPerf Tiny v1 keyword spotting reference: DS-CNN (small), 49 frames x 10 MFCCs.

    Source: mlcommons/tiny, v0.1/training/keyword_spotting/keras_model.py (``ds_cnn``), after
    Zhang et al. 2017, "Hello Edge": Conv2D 64 (10x4, stride 2, 'same') + BN + ReLU + Dropout;
    four depthwise separable blocks (DepthwiseConv 3x3 + BN + ReLU, Conv 1x1 + BN + ReLU);
    Dropout, AveragePooling2D over the whole 25x5 map, Flatten, Dense softmax.
    """
    keras, layers = _keras()
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.2)(x)
    for _ in range(blocks):
        x = layers.DepthwiseConv2D(3, depth_multiplier=1, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2D(filters, 1, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    x = layers.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


def fc_autoencoder(input_dim=640, hidden=128, bottleneck=8, depth=4):
    """MLPerf Tiny v1 anomaly detection reference: the dense autoencoder (ToyADMOS / DCASE 2020).

    Source: mlcommons/tiny, v0.1/benchmarks/anomaly_detection/keras_model.py (Hitachi's DCASE
    2020 task 2 baseline): 640 inputs (5 frames x 128 log-mel bands) -> 4 x (Dense 128 + BN +
    ReLU) -> Dense 8 + BN + ReLU -> 4 x (Dense 128 + BN + ReLU) -> Dense 640 (linear). The output
    is a reconstruction, not class scores.
    """
    keras, layers = _keras()
    inputs = keras.Input(shape=(input_dim,))
    h = inputs
    for units in [hidden] * depth + [bottleneck] + [hidden] * depth:
        h = layers.Dense(units)(h)
        h = layers.BatchNormalization()(h)
        h = layers.Activation("relu")(h)
    outputs = layers.Dense(input_dim)(h)
    return keras.Model(inputs, outputs, name="fc_autoencoder")


# --------------------------------------------------------------------------- keras.applications
def keras_mobilenet(input_shape=(96, 96, 3), num_classes=2, alpha=0.25):
    """keras.applications.MobileNet (Howard et al. 2017), ``weights=None``, with its top.

    Keras accepts any channel count when ``weights=None`` (checked with Keras 3.15: a 64x64x1
    grayscale input builds as is; only ImageNet weights insist on 3 channels).
    """
    import keras

    return keras.applications.MobileNet(input_shape=input_shape, alpha=alpha, weights=None, include_top=True,
                                        classes=num_classes, classifier_activation="softmax")


def keras_mobilenet_v2(input_shape=(32, 32, 3), num_classes=5, alpha=0.35):
    """keras.applications.MobileNetV2 (Sandler et al. 2018), ``weights=None``, with its top.
    32x32 is the smallest input Keras accepts."""
    import keras

    return keras.applications.MobileNetV2(input_shape=input_shape, alpha=alpha, weights=None, include_top=True,
                                          classes=num_classes, classifier_activation="softmax")


def keras_mobilenet_v3(size="small", input_shape=(32, 32, 3), num_classes=5, alpha=1.0, minimalistic=False,
                       include_preprocessing=True):
    """keras.applications.MobileNetV3Small / MobileNetV3Large (Howard et al. 2019), ``weights=None``,
    with its top (1x1 conv head, Flatten, softmax).

    Not minimalistic: hard-swish activations (``x * ReLU6(x + 3) / 6``, built from Keras ops inside
    the functional graph), squeeze-and-excite blocks, 5x5 depthwise convs. Minimalistic: ReLU,
    3x3 kernels, no squeeze-and-excite. ``include_preprocessing`` adds Rescaling(1/127.5, -1) (the
    model then expects [0, 255] inputs). 32x32 is the smallest input Keras accepts.
    """
    import keras

    build = {"small": keras.applications.MobileNetV3Small, "large": keras.applications.MobileNetV3Large}[size]
    return build(input_shape=input_shape, alpha=alpha, minimalistic=minimalistic, include_top=True, weights=None,
                 classes=num_classes, classifier_activation="softmax", include_preprocessing=include_preprocessing)


# --------------------------------------------------------------------------- Keras examples
def keras_efficientnet(input_shape=(32, 32, 3), num_classes=5, width=0.25, depth=0.25):
    """keras.applications EfficientNet (Tan & Le 2019) from Keras' own builder, the function
    behind EfficientNetB0-B7 (``keras.src.applications.efficientnet.EfficientNet``), at a reduced
    width and depth coefficient (B0 is 1.0 / 1.0), ``weights=None``, with its top: Rescaling and
    Normalization in the model, swish (x * sigmoid(x)) everywhere, squeeze-excite, drop-connect
    (inactive at inference) and residual adds."""
    from keras.src.applications.efficientnet import EfficientNet

    return EfficientNet(width, depth, input_shape[0], weights=None, input_shape=input_shape, classes=num_classes,
                        name="efficientnet_tiny")


def keras_resnet(input_shape=(32, 32, 3), num_classes=5, filters=(8, 16), blocks=2, preact=False):
    """keras.applications ResNet (He et al. 2015) / ResNetV2 (2016) from Keras' own builder, the
    function behind ResNet50 / ResNet50V2 (``keras.src.applications.resnet.ResNet`` with its
    bottleneck stacks ``stack_residual_blocks_v1`` / ``_v2``), reduced to two stacks of ``blocks``
    blocks (ResNet50: four, of 3, 4, 6 and 3), ``weights=None``, with its top: the 7x7 stride-2
    stem after ZeroPadding2D(3), ZeroPadding2D(1) + MaxPooling2D(3, 2), batch norm, 1x1-3x3-1x1
    bottlenecks with projection shortcuts, residual adds (V2: pre-activation, the stride in the
    last block of a stack, a shortcut through MaxPooling2D(1, 2))."""
    from keras.src.applications import resnet

    if preact:
        def stacks(x):
            x = resnet.stack_residual_blocks_v2(x, filters[0], blocks, name="conv2")
            return resnet.stack_residual_blocks_v2(x, filters[1], blocks, stride1=1, name="conv3")
    else:
        def stacks(x):
            x = resnet.stack_residual_blocks_v1(x, filters[0], blocks, stride1=1, name="conv2")
            return resnet.stack_residual_blocks_v1(x, filters[1], blocks, name="conv3")
    return resnet.ResNet(stacks, preact, True, weights=None, input_shape=input_shape, classes=num_classes,
                         name="resnet_v2_small" if preact else "resnet_small")


def keras_densenet(input_shape=(32, 32, 3), num_classes=5, blocks=(2, 2, 2, 2)):
    """keras.applications DenseNet (Huang et al. 2017) from Keras' own builder, the function behind
    DenseNet121 (``keras.src.applications.densenet.DenseNet``; DenseNet121's blocks are 6, 12, 24,
    16), ``weights=None``, with its top: the ResNet-like padded stem, dense blocks (BN-ReLU-1x1-
    BN-ReLU-3x3 growing the map by 32 channels each, concatenated), transitions with 2x2 average
    pooling."""
    from keras.src.applications.densenet import DenseNet

    return DenseNet(list(blocks), weights=None, input_shape=input_shape, classes=num_classes)


def keras_efficientnet_v2(input_shape=(32, 32, 3), num_classes=5, width=0.25, stages=4):
    """keras.applications EfficientNetV2 (Tan & Le 2021) from Keras' own builder, the function
    behind EfficientNetV2B0-L (``keras.src.applications.efficientnet_v2.EfficientNetV2``) with
    B0's block table cut to its first ``stages`` stages (B0: six) of one block each, at width
    ``width``, ``weights=None``, with its top: Rescaling and Normalization in the model, fused
    MBConv blocks (a 3x3 expansion convolution, then a 1x1 projection; with expansion 1 the 3x3
    alone and a residual add) and, from stage 4, MBConv blocks (1x1 expansion, 3x3 depthwise,
    squeeze-excite, projection); swish everywhere."""
    from keras.src.applications.efficientnet_v2 import DEFAULT_BLOCKS_ARGS, EfficientNetV2

    blocks = [dict(b, num_repeat=1) for b in DEFAULT_BLOCKS_ARGS["efficientnetv2-b0"][:stages]]
    return EfficientNetV2(width, 1.0, input_shape[0], blocks_args=blocks, name="efficientnet_v2_tiny",
                          weights=None, input_shape=input_shape, classes=num_classes)


def keras_nasnet(input_shape=(32, 32, 3), num_classes=5, penultimate_filters=96, num_blocks=1, stem_filters=8):
    """keras.applications NASNet (Zoph et al. 2018) from Keras' own builder, the function behind
    NASNetMobile / NASNetLarge (``keras.src.applications.nasnet.NASNet``; Mobile: penultimate
    filters 1056, 4 blocks a stage, stem 32), reduced, ``weights=None``, with its top: the
    searched normal and reduction cells (separable 3x3/5x5/7x7 convolutions applied twice, ReLU
    before them, average and max pooling with stride 1 and 2, additions, concatenation), the
    cells' "adjust" paths (ZeroPadding2D + Cropping2D shifting the map by one pixel, two strided
    1x1 average poolings, concatenated) and the two stem reduction cells."""
    from keras.src.applications.nasnet import NASNet

    return NASNet(input_shape=input_shape, penultimate_filters=penultimate_filters, num_blocks=num_blocks,
                  stem_block_filters=stem_filters, skip_reduction=False, weights=None, classes=num_classes,
                  default_size=input_shape[0], name="nasnet_tiny")


def keras_convnext(input_shape=(32, 32, 3), num_classes=5, depths=(1, 1, 1, 1), dims=(16, 32, 48, 64)):
    """keras.applications ConvNeXt (Liu et al. 2022) from Keras' own builder, the function behind
    ConvNeXtTiny-XLarge (``keras.src.applications.convnext.ConvNeXt``; Tiny: depths 3, 3, 9, 3 and
    widths 96-768), reduced, ``weights=None``, with its top: Normalization in the model, the 4x4
    stride-4 patchify stem and 2x2 stride-2 downsampling convolutions behind LayerNormalization,
    blocks of a 7x7 depthwise convolution, LayerNormalization, an inverted bottleneck of two 1x1
    (Dense) layers with GELU, LayerScale and the residual add; a LayerNormalization head."""
    from keras.src.applications.convnext import ConvNeXt

    return ConvNeXt(depths=list(depths), projection_dims=list(dims), default_size=input_shape[0],
                    name="convnext_tiny", weights=None, input_shape=input_shape, classes=num_classes)


def keras_inception_resnet(input_shape=(9, 9, 3), num_classes=5, filters=32):
    """keras.applications InceptionResNetV2 (Szegedy et al. 2017) from Keras' own pieces
    (``keras.src.applications.inception_resnet_v2``: ``conv2d_bn``, Conv2D + BatchNormalization
    without scale + ReLU, and ``inception_resnet_block``), reduced to a stem and two Inception-
    ResNet-A blocks ("block35": 1x1, 1x1-3x3 and 1x1-3x3-3x3 branches concatenated, a 1x1 conv
    back to the input's width, scaled by CustomScaleLayer and added to the input; the second with
    scale 1 and no activation, as the network's last block), then its top. The full network's
    B and C blocks add only 1x7/7x1 and 1x3/3x1 kernels, 55.9M parameters in all."""
    import keras
    from keras.src.applications import inception_resnet_v2 as irv2

    inp = keras.Input(input_shape)
    x = irv2.conv2d_bn(inp, filters, 3)
    x = irv2.inception_resnet_block(x, 0.17, "block35", 1)
    x = irv2.inception_resnet_block(x, 1.0, "block35", 2, activation=None)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(num_classes, activation="softmax")(x), name="inception_resnet_tiny")


def mnist_convnet(input_shape=(28, 28, 1), num_classes=10):
    """Keras example "Simple MNIST convnet" (keras.io/examples/vision/mnist_convnet/):
    Conv2D 32 3x3 ReLU, MaxPooling 2, Conv2D 64 3x3 ReLU, MaxPooling 2, Flatten, Dropout 0.5,
    Dense softmax (34,826 parameters). The example is a Sequential model; this is the same graph
    in functional form."""
    keras, layers = _keras()
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(32, kernel_size=(3, 3), activation="relu")(inputs)
    x = layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = layers.Conv2D(64, kernel_size=(3, 3), activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mnist_convnet")


def simple_audio(input_shape=(124, 129, 1), num_classes=8, size=32, filters=(32, 64), units=128, mean=0.0,
                 variance=1.0):
    """TensorFlow tutorial "Simple audio recognition" (tensorflow.org/tutorials/audio/simple_audio;
    Mini Speech Commands, 8 words, 124 x 129 spectrograms): Resizing to 32 x 32 (bilinear),
    Normalization (the tutorial adapts it to the training spectrograms; here its mean and variance
    are arguments), Conv2D 32 3x3 ReLU, Conv2D 64 3x3 ReLU, MaxPooling 2, Dropout 0.25, Flatten,
    Dense 128 ReLU, Dropout 0.5, Dense logits. Sequential there, the same graph here."""
    keras, layers = _keras()
    inputs = keras.Input(shape=input_shape)
    x = layers.Resizing(size, size)(inputs)
    x = layers.Normalization(mean=mean, variance=variance)(x)
    x = layers.Conv2D(filters[0], 3, activation="relu")(x)
    x = layers.Conv2D(filters[1], 3, activation="relu")(x)
    x = layers.Dropout(0.25)(layers.MaxPooling2D()(x))
    x = layers.Dense(units, activation="relu")(layers.Flatten()(x))
    outputs = layers.Dense(num_classes)(layers.Dropout(0.5)(x))
    return keras.Model(inputs, outputs, name="simple_audio")


def lenet5(input_shape=(32, 32, 1), num_classes=10):
    """LeNet-5 (LeCun et al. 1998, "Gradient-based learning applied to document recognition"), as
    its Keras renditions build it: C1 Conv2D 6 5x5 tanh, S2 AveragePooling 2, C3 Conv2D 16 5x5
    tanh, S4 AveragePooling 2, C5 Conv2D 120 5x5 tanh over the 5x5 map (a 1x1 output, as the
    paper's C5), Flatten, F6 Dense 84 tanh, Dense softmax (61,706 parameters). The paper's scaled
    tanh 1.7159 tanh(2a/3) is the plain tanh here, and its Gaussian output units a softmax."""
    keras, layers = _keras()
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(6, 5, activation="tanh")(inputs)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Conv2D(16, 5, activation="tanh")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Conv2D(120, 5, activation="tanh")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(84, activation="tanh")(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="lenet5")


def mobilefacenet(input_shape=(112, 112, 3), embedding=128, width=1.0):
    """MobileFaceNet (Chen et al. 2018, "MobileFaceNets: Efficient CNNs for Accurate Real-Time
    Face Verification on Mobile Devices", Table 1): Conv 3x3/2 64, depthwise 3x3 64, inverted
    residual bottlenecks (expansion t, channels c, repeats n, first stride s) (2, 64, 5, 2),
    (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1), Conv 1x1 512, the linear
    global depthwise convolution (GDConv: a depthwise convolution whose kernel is the whole final
    map), a linear Conv 1x1 to the embedding. Every convolution is followed by BatchNorm; the
    non-linearity is PReLU with one slope per channel; bottleneck projections are linear and add
    the block's input when shapes allow. ``width`` scales every channel count (1.0 published)."""
    keras, layers = _keras()

    def ch(c):
        return max(8, int(c * width))

    def conv(x, filters, kernel, stride=1, act=True):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.PReLU(shared_axes=[1, 2])(x) if act else x

    def depthwise(x, kernel, stride=1, act=True, padding="same"):
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.PReLU(shared_axes=[1, 2])(x) if act else x

    inputs = keras.Input(shape=input_shape)
    x = conv(inputs, ch(64), 3, 2)
    x = depthwise(x, 3)
    for t, c, n, s in ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1)):
        for i in range(n):
            y = conv(x, x.shape[-1] * t, 1)
            y = depthwise(y, 3, s if i == 0 else 1)
            y = conv(y, ch(c), 1, act=False)
            x = layers.Add()([x, y]) if (s == 1 or i > 0) and x.shape[-1] == ch(c) else y
    x = conv(x, ch(512), 1)
    x = depthwise(x, tuple(x.shape[1:3]), act=False, padding="valid")  # GDConv
    x = conv(x, embedding, 1, act=False)
    outputs = layers.Flatten()(x)
    return keras.Model(inputs, outputs, name="mobilefacenet")


def yolov2_tiny(input_shape=(416, 416, 3), anchors=5, num_classes=20, width=1.0):
    """The YOLOv2-tiny backbone and head (Redmon & Farhadi 2017; darknet's yolov2-tiny-voc.cfg):
    Conv 3x3 16 with BatchNorm and LeakyReLU 0.1, then MaxPooling 2/2, doubling the channels
    each time up to 512; a MaxPooling 2 with stride 1 ('same': darknet pads the right and bottom);
    Conv 3x3 1024 and 1024; a linear Conv 1x1 to anchors x (5 + classes) outputs per cell (the
    region layer's decoding is post-processing, not part of the network). ``width`` scales the
    channel counts (1.0 published)."""
    keras, layers = _keras()
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for k, filters in enumerate((16, 32, 64, 128, 256, 512, 1024, 1024)):
        x = layers.Conv2D(max(2, int(filters * width)), 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.LeakyReLU(0.1)(x)
        if k < 5:
            x = layers.MaxPooling2D(2)(x)
        elif k == 5:
            x = layers.MaxPooling2D(2, strides=1, padding="same")(x)
    outputs = layers.Conv2D(anchors * (5 + num_classes), 1)(x)
    return keras.Model(inputs, outputs, name="yolov2_tiny")


def convmixer(input_shape=(32, 32, 3), num_classes=10, filters=32, depth=2, kernel_size=5, patch_size=2):
    """Keras example "Image classification with ConvMixer" (keras.io/examples/vision/convmixer/,
    ``get_conv_mixer_256_8``; Trockman & Kolter 2022), reduced from 256 filters and depth 8:
    Rescaling(1/255), a patch_size x patch_size stride-patch_size stem, then blocks of a
    depthwise convolution, GELU and BatchNorm with a residual add, a 1x1 convolution, GELU and
    BatchNorm; global average pooling and a softmax Dense."""
    keras, layers = _keras()

    def gelu_bn(x):
        return layers.BatchNormalization()(layers.Activation("gelu")(x))

    inputs = keras.Input(shape=input_shape)
    x = layers.Rescaling(scale=1.0 / 255)(inputs)
    x = gelu_bn(layers.Conv2D(filters, kernel_size=patch_size, strides=patch_size)(x))
    for _ in range(depth):
        x = layers.Add()([gelu_bn(layers.DepthwiseConv2D(kernel_size=kernel_size, padding="same")(x)), x])
        x = gelu_bn(layers.Conv2D(filters, kernel_size=1)(x))
    x = layers.GlobalAvgPool2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x), name="convmixer")


def xception_from_scratch(input_shape=(180, 180, 3), num_classes=2, entry=128, sizes=(256, 512, 728), final=1024,
                          data_augmentation=True):
    """Keras example "Image classification from scratch" (keras.io/examples/vision/
    image_classification_from_scratch/, ``make_model``): a small Xception-like network.

    The augmentation block (RandomFlip("horizontal"), RandomRotation(0.1)) as the example's
    "option 1" (part of the model, inactive at inference); Rescaling(1/255); entry Conv2D/2 + BN +
    ReLU; per size: ReLU, SeparableConv2D, BN, ReLU, SeparableConv2D, BN, MaxPooling 3/2 'same', and
    a residual from the block's input through a strided 1x1 Conv2D; SeparableConv2D + BN + ReLU,
    GlobalAveragePooling2D, Dropout 0.25, Dense (logits; one unit when ``num_classes`` is 2).
    Published widths: entry 128, sizes [256, 512, 728], final 1024, input 180x180x3.
    """
    keras, layers = _keras()
    inputs = keras.Input(shape=input_shape)
    x = inputs
    if data_augmentation:
        for layer in (layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)):
            x = layer(x)
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(entry, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous_block_activation = x
    for size in sizes:
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous_block_activation)
        x = layers.add([x, residual])
        previous_block_activation = x
    x = layers.SeparableConv2D(final, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    units = 1 if num_classes == 2 else num_classes
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(units, activation=None)(x)
    return keras.Model(inputs, outputs, name="xception_from_scratch")


# --------------------------------------------------------------------------- classic small nets
def squeezenet(input_shape=(224, 224, 3), num_classes=1000, width=1.0, dropout=0.5):
    """SqueezeNet v1.1 (Iandola et al. 2016; reference: forresti/SqueezeNet, SqueezeNet_v1.1
    train_val.prototxt): Conv 3x3/2 64 + ReLU, MaxPool 3/2, fire2-3 (squeeze 16, expand 64+64),
    MaxPool 3/2, fire4-5 (32, 128+128), MaxPool 3/2, fire6-7 (48, 192+192), fire8-9 (64, 256+256),
    Dropout, Conv 1x1 to the classes + ReLU, GlobalAveragePooling, softmax.

    A fire module: squeeze Conv1x1 + ReLU, then expand Conv1x1 + ReLU and expand Conv3x3 ('same')
    + ReLU concatenated on the channel axis. ``width`` scales every filter count.
    """
    keras, layers = _keras()

    def n(c):
        return max(1, int(round(c * width)))

    def fire(x, squeeze, expand):
        s = layers.Conv2D(n(squeeze), 1, activation="relu")(x)
        e1 = layers.Conv2D(n(expand), 1, activation="relu")(s)
        e3 = layers.Conv2D(n(expand), 3, padding="same", activation="relu")(s)
        return layers.Concatenate(axis=-1)([e1, e3])

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(n(64), 3, strides=2, activation="relu")(inputs)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = fire(x, 16, 64)
    x = fire(x, 16, 64)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = fire(x, 32, 128)
    x = fire(x, 32, 128)
    x = layers.MaxPooling2D(3, strides=2)(x)
    x = fire(x, 48, 192)
    x = fire(x, 48, 192)
    x = fire(x, 64, 256)
    x = fire(x, 64, 256)
    x = layers.Dropout(dropout)(x)
    x = layers.Conv2D(num_classes, 1, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Activation("softmax")(x)
    return keras.Model(inputs, outputs, name="squeezenet")


def channel_shuffle(x, groups=2):
    """ShuffleNet's channel shuffle with standard layers: Reshape (H, W, g, C/g) -> Permute the last
    two axes -> Reshape (H, W, C)."""
    _, layers = _keras()
    h, w, c = (int(d) for d in x.shape[1:])
    x = layers.Reshape((h, w, groups, c // groups))(x)
    x = layers.Permute((1, 2, 4, 3))(x)
    return layers.Reshape((h, w, c))(x)


def shufflenet_v2_stage(input_shape=(32, 32, 3), num_classes=10, stem=24, channels=48, units=4, head=128):
    """One ShuffleNet V2 stage (Ma et al. 2018, "ShuffleNet V2: Practical Guidelines for Efficient
    CNN Architecture Design", Fig. 3 (c), (d) and Table 5) between the network's stem and head.

    Stem: Conv 3x3/2 + BN + ReLU, MaxPool 3/2 'same'. The stage: one downsampling unit (both
    branches stride 2: DW 3x3/2 + BN, Conv1x1 + BN + ReLU; and Conv1x1 + BN + ReLU, DW 3x3/2 + BN,
    Conv1x1 + BN + ReLU; concatenated) then ``units - 1`` basic units (channel split in half; the
    right half through Conv1x1 + BN + ReLU, DW 3x3 + BN, Conv1x1 + BN + ReLU; concatenated with the
    left half), each unit ending in a channel shuffle of 2 groups. Head: Conv1x1 + BN + ReLU
    (1024 in the paper), GlobalAveragePooling2D, Dense softmax. The defaults are the 0.5x
    network's stage 2 (48 channels, 4 units) with a narrower head.

    The channel split has no Keras layer: it is written as tensor slicing in the functional
    graph (``x[..., :c]``, a ``GetItem`` operation), the published form, rather than a Lambda.
    """
    keras, layers = _keras()

    def conv_bn_relu(x, c):
        x = layers.Conv2D(c, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    def dw_bn(x, stride):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        return layers.BatchNormalization()(x)

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(stem, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)

    half = channels // 2
    left = conv_bn_relu(dw_bn(x, 2), half)
    right = conv_bn_relu(dw_bn(conv_bn_relu(x, half), 2), half)
    x = channel_shuffle(layers.Concatenate(axis=-1)([left, right]))
    for _ in range(units - 1):
        left, right = x[..., :half], x[..., half:]
        right = conv_bn_relu(dw_bn(conv_bn_relu(right, half), 1), half)
        x = channel_shuffle(layers.Concatenate(axis=-1)([left, right]))

    x = conv_bn_relu(x, head)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="shufflenet_v2_stage")


def conv1d_accelerometer(input_shape=(128, 3), num_classes=6, filters=(16, 32), kernel_size=5):
    """A Conv1D classifier of 3-axis accelerometer windows (human activity recognition, e.g.
    UCI-HAR's 128-sample windows; the layout of the Keras example "Timeseries classification
    from scratch", keras.io/examples/timeseries/timeseries_classification_from_scratch/, reduced
    to two convolutions with a pooling between them): Conv1D 16 k5 ReLU, MaxPooling1D 2, Conv1D 32
    k5 ReLU, GlobalAveragePooling1D, Dense softmax."""
    keras, layers = _keras()
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv1D(filters[0], kernel_size, activation="relu")(inputs)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(filters[1], kernel_size, activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="conv1d_accelerometer")


def timeseries_transformer(input_shape=(48, 3), num_classes=2, head_size=16, num_heads=2, ff_dim=4, blocks=2,
                           mlp_units=(32,)):
    """Keras example "Timeseries classification with a Transformer model" (keras.io/examples/
    timeseries/timeseries_classification_transformer/; FordA, 500 x 1 readings, head size 256, 4
    heads, 4 blocks, feed-forward width 4, one 128-unit MLP layer, dropout 0.25), reduced to 64
    readings, head size 16, 2 heads and 2 blocks. Each encoder block, post-norm as published:
    MultiHeadAttention of the sequence with itself, Dropout, LayerNormalization (epsilon 1e-6), a
    residual add of the block's input; then the feed-forward part as two 1x1 Conv1D (ReLU, then back
    to the input's features), Dropout, LayerNormalization and a second residual add. The head
    averages over the feature axis (GlobalAveragePooling1D with data_format="channels_first", one
    value per time step, as published), then the MLP (ReLU, Dropout) and a softmax Dense."""
    keras, layers = _keras()
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for _ in range(blocks):
        y = layers.MultiHeadAttention(key_dim=head_size, num_heads=num_heads, dropout=0.25)(x, x)
        y = layers.LayerNormalization(epsilon=1e-6)(layers.Dropout(0.25)(y))
        res = y + x
        y = layers.Conv1D(ff_dim, 1, activation="relu")(res)
        y = layers.Conv1D(input_shape[-1], 1)(layers.Dropout(0.25)(y))
        x = layers.LayerNormalization(epsilon=1e-6)(y) + res
    x = layers.GlobalAveragePooling1D(data_format="channels_first")(x)
    for units in mlp_units:
        x = layers.Dropout(0.4)(layers.Dense(units, activation="relu")(x))
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="timeseries_transformer")


def segmentation_unet(input_shape=(160, 160, 3), num_classes=3, entry=32, down=(64, 128, 256), up=(256, 128, 64, 32)):
    """Keras example "Image segmentation with a U-Net-like architecture" (keras.io/examples/vision/
    oxford_pets_image_segmentation/; 160x160 pets, 3 classes per pixel), its ``get_model`` with the
    widths as arguments: an entry Conv2D/2 + BN + ReLU; per down block ReLU, SeparableConv2D, BN,
    ReLU, SeparableConv2D, BN, MaxPooling2D(3, /2, same) plus a 1x1/2 conv residual of the block's
    input; per up block ReLU, Conv2DTranspose, BN, ReLU, Conv2DTranspose, BN, UpSampling2D(2) plus
    the block's input upsampled and projected by a 1x1 conv; a 3x3 per-pixel softmax head."""
    keras, layers = _keras()
    inputs = keras.Input(shape=input_shape)
    x = layers.Activation("relu")(layers.BatchNormalization()(layers.Conv2D(entry, 3, strides=2, padding="same")(inputs)))
    previous = x

    def twice(x, conv, filters):  # (ReLU, conv 3x3, BatchNorm) twice, as both block kinds start
        for _ in range(2):
            x = layers.Activation("relu")(x)
            x = layers.BatchNormalization()(conv(filters, 3, padding="same")(x))
        return x

    for filters in down:
        x = layers.MaxPooling2D(3, strides=2, padding="same")(twice(x, layers.SeparableConv2D, filters))
        x = layers.add([x, layers.Conv2D(filters, 1, strides=2, padding="same")(previous)])
        previous = x
    for filters in up:
        x = layers.UpSampling2D(2)(twice(x, layers.Conv2DTranspose, filters))
        x = layers.add([x, layers.Conv2D(filters, 1, padding="same")(layers.UpSampling2D(2)(previous))])
        previous = x
    outputs = layers.Conv2D(num_classes, 3, activation="softmax", padding="same")(x)
    return keras.Model(inputs, outputs, name="segmentation_unet")



def espcn(input_shape=(None, None, 1), upscale=3, filters=(64, 64, 32)):
    """Keras example "Image Super-Resolution using an Efficient Sub-Pixel CNN" (keras.io/examples/
    vision/super_resolution_sub_pixel/; Shi et al. 2016, ESPCN): Conv2D 5x5 then two 3x3 (widths
    ``filters``) and a 3x3 to channels x upscale^2, every conv ReLU with orthogonal kernels and
    "same" padding, then the example's own ``DepthToSpace`` layer: a ``keras.layers.Layer``
    subclass whose ``call()`` rearranges the channels into upscale x upscale pixel blocks with
    ``ops.reshape`` / ``ops.transpose`` (6-D) / ``ops.reshape``, from ``ops.shape`` of its input. A
    user's own layer class, so the compiler has to trace through its ``call()``. The example's
    input is any size (None, None): a fixed one is needed here."""
    keras, layers = _keras()
    from keras import ops

    class DepthToSpace(layers.Layer):  # as the example defines it: no get_config, no weights
        def __init__(self, block_size):
            super().__init__()
            self.block_size = block_size

        def call(self, x):
            batch, height, width, depth = ops.shape(x)
            b = self.block_size
            x = ops.reshape(x, [batch, height, width, b, b, depth // (b * b)])
            x = ops.transpose(x, [0, 1, 3, 2, 4, 5])
            return ops.reshape(x, [batch, height * b, width * b, depth // (b * b)])

    conv = dict(activation="relu", kernel_initializer="orthogonal", padding="same")
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(filters[0], 5, **conv)(inputs)
    for f in filters[1:]:
        x = layers.Conv2D(f, 3, **conv)(x)
    x = layers.Conv2D(input_shape[-1] * upscale ** 2, 3, **conv)(x)
    return keras.Model(inputs, DepthToSpace(upscale)(x), name="espcn")

def edsr(input_shape=(None, None, 3), filters=64, res_blocks=16, factor=2):
    """Keras example "Enhanced Deep Residual Networks for single-image super-resolution"
    (keras.io/examples/vision/edsr/; Lim et al. 2017, the EDSR baseline): Rescaling(1/255), a 3x3
    conv, ``res_blocks`` residual blocks (3x3 conv ReLU, 3x3 conv, Add), a 3x3 conv added to the
    first conv's output, upsampling (a 3x3 conv to filters x factor^2 channels then
    ``depth_to_space``, twice), a 3x3 conv to 3 channels and Rescaling(255). The example writes
    ``tf.nn.depth_to_space``; on Keras 3 that is ``keras.ops.depth_to_space``. Its model class adds
    train and predict steps only (its call() is the functional graph's); the example hard-codes 64
    filters, here ``filters``; its input is any size: a fixed one is needed here."""
    keras, layers = _keras()
    from keras import ops

    def conv(x, width, **kwargs):
        return layers.Conv2D(width, 3, padding="same", **kwargs)(x)

    inputs = keras.Input(input_shape)
    x = x_new = conv(layers.Rescaling(scale=1.0 / 255)(inputs), filters)
    for _ in range(res_blocks):
        x_new = layers.Add()([x_new, conv(conv(x_new, filters, activation="relu"), filters)])
    x = layers.Add()([x, conv(x_new, filters)])
    for _ in range(2):
        x = ops.depth_to_space(conv(x, filters * factor ** 2), block_size=factor)
    outputs = layers.Rescaling(scale=255)(conv(x, 3))
    return keras.Model(inputs, outputs, name="edsr")


def patch_convnet(input_shape=(32, 32, 3), num_classes=10, image_size=48, dimensions=256, se_ratio=8, trunk_depth=2):
    """Keras example "Augmenting convnets with aggregated attention" (keras.io/examples/vision/
    patch_convnet/; Touvron et al. 2021, PatchConvNet): Rescaling(1/255) and Resizing to
    ``image_size``; a stem of two 3x3 /2 GELU convs; the trunk (its own layer class): ``trunk_depth``
    Sequentials of the same five layer objects (LayerNormalization, 1x1 GELU conv, 3x3 GELU conv,
    the example's squeeze-excite layer class, 1x1 conv), each added to a running shortcut, then the
    map as a sequence of patches; attention pooling (its own layer class): a learned class token
    concatenated in front, LayerNormalization, one-head MultiHeadAttention of the class token over
    every token (asking for the attention scores), the class token added, LayerNormalization, an
    MLP residual, a Dense to logits. The example's layer returns the logits and the scores (its
    attention map, for plotting); here the model's output is the logits, as a classifier's is,
    and the scores are computed and never read. Ports to Keras 3 as a user writes them:
    tf.nn.gelu -> ops.gelu, the class token a weight of the layer (add_weight), tf.repeat ->
    ops.tile; the example's data augmentation (inactive at inference) left out."""
    keras, layers = _keras()
    from keras import ops

    class SqueezeExcite(layers.Layer):
        def __init__(self, ratio, **kwargs):
            super().__init__(**kwargs)
            self.ratio = ratio

        def build(self, input_shape):
            filters = input_shape[-1]
            self.squeeze = layers.GlobalAveragePooling2D(keepdims=True)
            self.reduction = layers.Dense(units=filters // self.ratio, activation="relu", use_bias=False)
            self.excite = layers.Dense(units=filters, activation="sigmoid", use_bias=False)
            self.multiply = layers.Multiply()

        def call(self, x):
            return self.multiply([x, self.excite(self.reduction(self.squeeze(x)))])

    class Trunk(layers.Layer):
        def __init__(self, depth, dimensions, ratio, **kwargs):
            super().__init__(**kwargs)
            self.depth, self.dimensions, self.ratio = depth, dimensions, ratio

        def build(self, input_shape):
            config = {"filters": self.dimensions, "activation": ops.gelu, "padding": "same"}
            block = [layers.LayerNormalization(epsilon=1e-6), layers.Conv2D(kernel_size=(1, 1), **config),
                     layers.Conv2D(kernel_size=(3, 3), **config), SqueezeExcite(ratio=self.ratio),
                     layers.Conv2D(kernel_size=(1, 1), filters=self.dimensions, padding="same")]
            self.trunk_blocks = [keras.Sequential(block) for _ in range(self.depth)]  # the same layers, as published
            self.add = layers.Add()
            self.flatten_spatial = layers.Reshape((-1, self.dimensions))

        def call(self, x):
            shortcut = x
            for trunk_block in self.trunk_blocks:
                shortcut = self.add([trunk_block(x), shortcut])
                x = shortcut
            return self.flatten_spatial(x)

    class AttentionPooling(layers.Layer):
        def __init__(self, dimensions, num_classes, **kwargs):
            super().__init__(**kwargs)
            self.dimensions, self.num_classes = dimensions, num_classes
            self.cls = self.add_weight(shape=(1, 1, dimensions), initializer="zeros", name="cls")

        def build(self, input_shape):
            self.attention = layers.MultiHeadAttention(num_heads=1, key_dim=self.dimensions, dropout=0.2)
            self.layer_norm1, self.layer_norm2, self.layer_norm3 = (layers.LayerNormalization(epsilon=1e-6)
                                                                    for _ in range(3))
            self.mlp = keras.Sequential([layers.Dense(units=self.dimensions, activation=ops.gelu), layers.Dropout(0.2),
                                         layers.Dense(units=self.dimensions, activation=ops.gelu)])
            self.dense = layers.Dense(units=self.num_classes)
            self.flatten = layers.Flatten()

        def call(self, x):
            class_token = ops.tile(self.cls, [ops.shape(x)[0], 1, 1])
            x = self.layer_norm1(ops.concatenate([class_token, x], axis=1))
            x, viz_weights = self.attention(query=x[:, 0:1], key=x, value=x, return_attention_scores=True)
            class_token = self.layer_norm3(self.flatten(self.layer_norm2(class_token + x)))
            class_token = class_token + self.mlp(class_token)
            return self.dense(class_token), viz_weights

    gelu = {"kernel_size": (3, 3), "strides": (2, 2), "activation": ops.gelu, "padding": "same"}
    inputs = keras.Input(input_shape)
    x = layers.Resizing(image_size, image_size)(layers.Rescaling(1 / 255.0)(inputs))
    x = layers.Conv2D(filters=dimensions, **gelu)(layers.Conv2D(filters=dimensions // 2, **gelu)(x))
    x = Trunk(depth=trunk_depth, dimensions=dimensions, ratio=se_ratio)(x)
    logits, _ = AttentionPooling(dimensions=dimensions, num_classes=num_classes)(x)
    return keras.Model(inputs, logits, name="patch_convnet")


def mobilevit(input_shape=(256, 256, 3), num_classes=5, patch_size=4, expansion_factor=2, stem=16,
              channels=(16, 24, 48, 64, 80), dims=(64, 80, 96), blocks=(2, 4, 3), head=320):
    """Keras example "MobileViT: A mobile-friendly Transformer-based model for image
    classification" (keras.io/examples/vision/mobilevit/; Mehta et al. 2021), its
    ``create_mobilevit`` (the XXS variant: stem 16, MV2 widths 16/24/48/64/80, MobileViT widths
    64/80/96 with 2/4/3 transformer layers, a 320-wide 1x1 head, tf_flowers' 5 classes, 256 x 256)
    with the widths as arguments. Rescaling(1/255); ``conv_block``: Conv2D with swish, 'same';
    ``inverted_residual_block``: 1x1 Conv (no bias) + BN + swish (the op, ``keras.activations.swish``
    on the tensor, as the example calls ``tf.nn.swish``), for stride 2 ZeroPadding2D(``correct_pad``)
    and a 'valid' depthwise 3x3, else 'same'; BN + swish; 1x1 Conv + BN; a residual Add when the
    widths match at stride 1. ``mobilevit_block``: conv_block 3x3 then 1x1 to the projection width,
    the unfolding as the example writes it (a plain Reshape of the (h, w, d) map to (patch_size,
    h*w/patch_size, d)), pre-norm transformer layers on that rank-4 tensor (LayerNormalization
    1e-6, MultiHeadAttention of 2 heads with key_dim = the width, dropout 0.1 -- its default
    attention axes on a rank-4 input are both token axes, so every position attends to every
    other --, Add, LayerNormalization, a swish MLP of 2x and 1x the width with Dropout 0.1, Add),
    the folding Reshape back to (h, w, d), a 1x1 conv_block to the block input's width,
    concatenation with the block input and a 3x3 conv_block fusing them. GlobalAveragePooling2D
    and a softmax Dense. Keras 3 port: ``tf.nn.swish`` -> ``keras.activations.swish``,
    ``imagenet_utils.correct_pad`` (not public in Keras 3) written out."""
    keras, layers = _keras()

    swish = keras.activations.swish

    def correct_pad(inputs, kernel_size):  # keras.applications' padding before a 'valid' stride-2 conv
        size = inputs.shape[1:3]
        adjust = (1 - size[0] % 2, 1 - size[1] % 2)
        correct = (kernel_size // 2, kernel_size // 2)
        return (correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1])

    def conv_block(x, filters=16, kernel_size=3, strides=2):
        return layers.Conv2D(filters, kernel_size, strides=strides, activation=swish, padding="same")(x)

    def inverted_residual_block(x, expanded_channels, output_channels, strides=1):
        m = layers.Conv2D(expanded_channels, 1, padding="same", use_bias=False)(x)
        m = layers.BatchNormalization()(m)
        m = swish(m)
        if strides == 2:
            m = layers.ZeroPadding2D(padding=correct_pad(m, 3))(m)
        m = layers.DepthwiseConv2D(3, strides=strides, padding="same" if strides == 1 else "valid", use_bias=False)(m)
        m = layers.BatchNormalization()(m)
        m = swish(m)
        m = layers.Conv2D(output_channels, 1, padding="same", use_bias=False)(m)
        m = layers.BatchNormalization()(m)
        if x.shape[-1] == output_channels and strides == 1:
            return layers.Add()([m, x])
        return m

    def mlp(x, hidden_units, dropout_rate):
        for units in hidden_units:
            x = layers.Dense(units, activation=swish)(x)
            x = layers.Dropout(dropout_rate)(x)
        return x

    def transformer_block(x, transformer_layers, projection_dim, num_heads=2):
        for _ in range(transformer_layers):
            x1 = layers.LayerNormalization(epsilon=1e-6)(x)
            attention_output = layers.MultiHeadAttention(num_heads=num_heads, key_dim=projection_dim,
                                                         dropout=0.1)(x1, x1)
            x2 = layers.Add()([attention_output, x])
            x3 = layers.LayerNormalization(epsilon=1e-6)(x2)
            x3 = mlp(x3, hidden_units=[x.shape[-1] * 2, x.shape[-1]], dropout_rate=0.1)
            x = layers.Add()([x3, x2])
        return x

    def mobilevit_block(x, num_blocks, projection_dim, strides=1):
        local_features = conv_block(x, filters=projection_dim, strides=strides)
        local_features = conv_block(local_features, filters=projection_dim, kernel_size=1, strides=strides)
        num_patches = int((local_features.shape[1] * local_features.shape[2]) / patch_size)
        non_overlapping_patches = layers.Reshape((patch_size, num_patches, projection_dim))(local_features)
        global_features = transformer_block(non_overlapping_patches, num_blocks, projection_dim)
        folded_feature_map = layers.Reshape((*local_features.shape[1:-1], projection_dim))(global_features)
        folded_feature_map = conv_block(folded_feature_map, filters=x.shape[-1], kernel_size=1, strides=strides)
        local_global_features = layers.Concatenate(axis=-1)([x, folded_feature_map])
        return conv_block(local_global_features, filters=projection_dim, strides=strides)

    c1, c2, c3, c4, c5 = channels
    inputs = keras.Input(input_shape)
    x = layers.Rescaling(scale=1.0 / 255)(inputs)
    x = conv_block(x, filters=stem)
    x = inverted_residual_block(x, expanded_channels=stem * expansion_factor, output_channels=c1)
    x = inverted_residual_block(x, expanded_channels=c1 * expansion_factor, output_channels=c2, strides=2)
    x = inverted_residual_block(x, expanded_channels=c2 * expansion_factor, output_channels=c2)
    x = inverted_residual_block(x, expanded_channels=c2 * expansion_factor, output_channels=c2)
    x = inverted_residual_block(x, expanded_channels=c2 * expansion_factor, output_channels=c3, strides=2)
    x = mobilevit_block(x, num_blocks=blocks[0], projection_dim=dims[0])
    x = inverted_residual_block(x, expanded_channels=dims[0] * expansion_factor, output_channels=c4, strides=2)
    x = mobilevit_block(x, num_blocks=blocks[1], projection_dim=dims[1])
    x = inverted_residual_block(x, expanded_channels=dims[1] * expansion_factor, output_channels=c5, strides=2)
    x = mobilevit_block(x, num_blocks=blocks[2], projection_dim=dims[2])
    x = conv_block(x, filters=head, kernel_size=1, strides=1)
    x = layers.GlobalAvgPool2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mobilevit")


def zero_dce(input_shape=(512, 512, 3), filters=32, iterations=8):
    """Keras example "Zero-DCE for low-light image enhancement" (keras.io/examples/vision/zero_dce/;
    Guo et al. 2020): the example's ``ZeroDCE`` keras.Model subclass as inference runs it, its
    ``call()`` = ``build_dce_net()`` then ``get_enhanced_image``. DCE-Net: seven 3x3 'same'
    Conv2D of 32 filters with ReLU, symmetrical concatenations (conv4+conv3 -> conv5, conv5+conv2
    -> conv6, conv6+conv1 -> the last), the last a Conv2D of 3 x 8 = 24 maps with tanh. The
    enhancement: the 24 maps sliced into eight 3-channel curve maps (``output[:, :, :, 3k:3k+3]``)
    applied one after another, x <- x + r_k * (x^2 - x) (``ops.power(x, 2)`` for ``tf.pow``). The
    example's input is any size ([None, None, 3]; trained on 512 x 512): a fixed one is needed here.
    The loss functions and train/test steps are training-only and left out. ``iterations`` is the
    number of curve maps (8 published; the net's last width is 3 x iterations)."""
    keras, layers = _keras()
    from keras import ops

    def build_dce_net():
        input_img = keras.Input(shape=input_shape)
        conv = dict(strides=(1, 1), activation="relu", padding="same")
        conv1 = layers.Conv2D(filters, (3, 3), **conv)(input_img)
        conv2 = layers.Conv2D(filters, (3, 3), **conv)(conv1)
        conv3 = layers.Conv2D(filters, (3, 3), **conv)(conv2)
        conv4 = layers.Conv2D(filters, (3, 3), **conv)(conv3)
        int_con1 = layers.Concatenate(axis=-1)([conv4, conv3])
        conv5 = layers.Conv2D(filters, (3, 3), **conv)(int_con1)
        int_con2 = layers.Concatenate(axis=-1)([conv5, conv2])
        conv6 = layers.Conv2D(filters, (3, 3), **conv)(int_con2)
        int_con3 = layers.Concatenate(axis=-1)([conv6, conv1])
        x_r = layers.Conv2D(3 * iterations, (3, 3), strides=(1, 1), activation="tanh", padding="same")(int_con3)
        return keras.Model(inputs=input_img, outputs=x_r)

    class ZeroDCE(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dce_model = build_dce_net()

        def get_enhanced_image(self, data, output):
            x = data
            for k in range(iterations):  # the example's r1 .. r8, written out there
                r = output[:, :, :, 3 * k:3 * k + 3]
                x = x + r * (ops.power(x, 2) - x)
            return x

        def call(self, data):
            dce_net_output = self.dce_model(data)
            return self.get_enhanced_image(data, dce_net_output)

    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, ZeroDCE(name="zero_dce")(inputs), name="zero_dce_inference")


def involution_net(input_shape=(32, 32, 3), num_classes=10, group_number=1, kernel_size=3, stride=1, reduction_ratio=2,
                   units=64):
    """Keras example "Involutional neural networks" (keras.io/examples/vision/involution/; Li et al.
    2021), its ``inv_model`` (CIFAR-10, 32 x 32 x 3): three of the example's ``Involution`` layers
    (channel 3, one group, 3x3 kernels, stride 1, reduction ratio 2), each followed by ReLU (and
    the first two by MaxPooling 2), Flatten, Dense 64 ReLU, Dense logits. ``Involution`` is a Layer
    subclass, built in ``build()`` from the input shape: kernel generation from the (for stride > 1
    average-pooled) input by a Sequential of Conv2D 1x1 (channel // reduction_ratio filters), BN,
    ReLU, Conv2D 1x1 (k*k*G filters), reshaped to (H, W, k*k, 1, G); the input's k x k 'same'
    patches (``keras.ops.image.extract_patches`` for ``tf.image.extract_patches``) reshaped to
    (H, W, k*k, C/G, G); their product (broadcast over C/G, rank 6), summed over the k*k axis
    (``ops.sum`` for ``tf.reduce_sum``), reshaped to (H, W, C). The layer returns (output, kernel);
    the model uses the output. ``tf.identity`` (stride 1) is an identity function. The layer takes
    ``**kwargs`` (the example's does not), so that Keras can rebuild it from its config."""
    keras, layers = _keras()
    from keras import ops

    class Involution(keras.layers.Layer):
        def __init__(self, channel, group_number, kernel_size, stride, reduction_ratio, name, **kwargs):
            super().__init__(name=name, **kwargs)
            self.channel = channel
            self.group_number = group_number
            self.kernel_size = kernel_size
            self.stride = stride
            self.reduction_ratio = reduction_ratio

        def build(self, input_shape):
            (_, height, width, num_channels) = input_shape
            height = height // self.stride
            width = width // self.stride
            self.stride_layer = (keras.layers.AveragePooling2D(pool_size=self.stride, strides=self.stride,
                                                               padding="same")
                                 if self.stride > 1 else (lambda t: t))
            self.kernel_gen = keras.Sequential([
                keras.layers.Conv2D(filters=self.channel // self.reduction_ratio, kernel_size=1),
                keras.layers.BatchNormalization(),
                keras.layers.ReLU(),
                keras.layers.Conv2D(filters=self.kernel_size * self.kernel_size * self.group_number, kernel_size=1),
            ])
            self.kernel_reshape = keras.layers.Reshape(
                target_shape=(height, width, self.kernel_size * self.kernel_size, 1, self.group_number))
            self.input_patches_reshape = keras.layers.Reshape(
                target_shape=(height, width, self.kernel_size * self.kernel_size, num_channels // self.group_number,
                              self.group_number))
            self.output_reshape = keras.layers.Reshape(target_shape=(height, width, num_channels))

        def call(self, x):
            kernel_input = self.stride_layer(x)
            kernel = self.kernel_gen(kernel_input)
            kernel = self.kernel_reshape(kernel)
            input_patches = ops.image.extract_patches(x, size=self.kernel_size, strides=self.stride, dilation_rate=1,
                                                      padding="same")
            input_patches = self.input_patches_reshape(input_patches)
            output = ops.multiply(kernel, input_patches)
            output = ops.sum(output, axis=3)
            output = self.output_reshape(output)
            return output, kernel

    channel = input_shape[-1]

    def inv(x, name):
        return Involution(channel=channel, group_number=group_number, kernel_size=kernel_size, stride=stride,
                          reduction_ratio=reduction_ratio, name=name)(x)

    inputs = keras.Input(shape=input_shape)
    x, _ = inv(inputs, "inv_1")
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x, _ = inv(x, "inv_2")
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x, _ = inv(x, "inv_3")
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(units, activation="relu")(x)
    outputs = keras.layers.Dense(num_classes)(x)
    return keras.Model(inputs=[inputs], outputs=[outputs], name="inv_model")


def shiftvit(input_shape=(32, 32, 3), num_classes=10, image_size=48, patch_size=4, projected_dim=96,
             num_shift_blocks_per_stages=(2, 4, 8, 2), epsilon=1e-5, stochastic_depth_rate=0.2, mlp_dropout_rate=0.2,
             num_div=12, shift_pixel=1, mlp_expand_ratio=2):
    """Keras example "A Vision Transformer without Attention" (keras.io/examples/vision/shiftvit/;
    Wang et al. 2022, ShiftViT), its ``ShiftViTModel.call`` as a functional model, the example's
    defaults as arguments: the augmentation model at inference, a patch projection (Conv2D
    ``patch_size`` /``patch_size``, 'same'), stages of ``StackedShiftBlocks`` (the example's layer
    classes: each ``ShiftViTBlock`` splits its channels into C // ``num_div`` groups, shifts the
    first four one pixel left, right, up and down (a crop then a pad back to H x W), concatenates
    them with the rest, and adds an MLP (Dense x2 GELU, Dense, dropouts) of its LayerNormalization;
    DropPath at inference passes its input; a ``PatchMerging`` (LayerNormalization, Conv2D 2x2 /2
    'same' without bias, twice the channels) after every stage but the last), global average
    pooling and a Dense classifier. Ports to Keras 3 as a user writes them: tf.split ->
    keras.ops.split, tf.image.crop_to_bounding_box / pad_to_bounding_box ->
    keras.ops.image.crop_images / pad_images, tf.concat -> ops.concatenate, tf.nn.gelu ->
    keras.activations.gelu (both exact). The augmentation (Resizing to input + 20, RandomCrop to
    ``image_size``, RandomFlip, Rescaling(1/255)) is here Resizing to ``image_size`` and
    Rescaling: RandomFlip passes its input at inference and Keras 3's RandomCrop at inference
    returns its input unchanged (the example's 52 x 52, which its blocks built for 48 x 48 reject)."""
    keras, layers = _keras()
    from keras import ops

    class MLP(layers.Layer):
        def __init__(self, mlp_expand_ratio, mlp_dropout_rate, **kwargs):
            super().__init__(**kwargs)
            self.mlp_expand_ratio, self.mlp_dropout_rate = mlp_expand_ratio, mlp_dropout_rate

        def build(self, input_shape):
            channels = input_shape[-1]
            self.mlp = keras.Sequential([layers.Dense(int(self.mlp_expand_ratio * channels), activation=keras.activations.gelu),
                                         layers.Dropout(self.mlp_dropout_rate), layers.Dense(channels),
                                         layers.Dropout(self.mlp_dropout_rate)])

        def call(self, x):
            return self.mlp(x)

    class DropPath(layers.Layer):
        def __init__(self, drop_path_prob, **kwargs):
            super().__init__(**kwargs)
            self.drop_path_prob = drop_path_prob

        def call(self, x, training=False):
            if training:
                keep_prob = 1 - self.drop_path_prob
                shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
                return (x / keep_prob) * ops.floor(keep_prob + keras.random.uniform(shape, 0, 1))
            return x

    class ShiftViTBlock(layers.Layer):
        def __init__(self, epsilon, drop_path_prob, mlp_dropout_rate, num_div=12, shift_pixel=1, mlp_expand_ratio=2,
                     **kwargs):
            super().__init__(**kwargs)
            self.shift_pixel, self.mlp_expand_ratio, self.mlp_dropout_rate = shift_pixel, mlp_expand_ratio, mlp_dropout_rate
            self.num_div, self.epsilon, self.drop_path_prob = num_div, epsilon, drop_path_prob

        def build(self, input_shape):
            self.H, self.W, self.C = input_shape[1], input_shape[2], input_shape[3]
            self.layer_norm = layers.LayerNormalization(epsilon=self.epsilon)
            self.drop_path = (DropPath(self.drop_path_prob) if self.drop_path_prob > 0.0 else layers.Activation("linear"))
            self.mlp = MLP(self.mlp_expand_ratio, self.mlp_dropout_rate)

        def get_shift_pad(self, x, mode):
            s = self.shift_pixel
            offset_height, offset_width, target_height, target_width = {
                "left": (0, 0, 0, s), "right": (0, s, 0, s), "up": (0, 0, s, 0), "down": (s, 0, s, 0)}[mode]
            crop = ops.image.crop_images(x, top_cropping=offset_height, left_cropping=offset_width,
                                         target_height=self.H - target_height, target_width=self.W - target_width)
            return ops.image.pad_images(crop, top_padding=offset_height, left_padding=offset_width,
                                        target_height=self.H, target_width=self.W)

        def call(self, x, training=False):
            x_splits = ops.split(x, self.C // self.num_div, axis=-1)
            for k, mode in enumerate(("left", "right", "up", "down")):
                x_splits[k] = self.get_shift_pad(x_splits[k], mode)
            x = ops.concatenate(x_splits, axis=-1)
            return x + self.drop_path(self.mlp(self.layer_norm(x)), training=training)

    class PatchMerging(layers.Layer):
        def __init__(self, epsilon, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = epsilon

        def build(self, input_shape):
            self.reduction = layers.Conv2D(2 * input_shape[-1], kernel_size=2, strides=2, padding="same", use_bias=False)
            self.layer_norm = layers.LayerNormalization(epsilon=self.epsilon)

        def call(self, x):
            return self.reduction(self.layer_norm(x))

    class StackedShiftBlocks(layers.Layer):
        def __init__(self, epsilon, mlp_dropout_rate, num_shift_blocks, stochastic_depth_rate, is_merge, num_div=12,
                     shift_pixel=1, mlp_expand_ratio=2, **kwargs):
            super().__init__(**kwargs)
            self.epsilon, self.mlp_dropout_rate, self.num_shift_blocks = epsilon, mlp_dropout_rate, num_shift_blocks
            self.stochastic_depth_rate, self.is_merge, self.num_div = stochastic_depth_rate, is_merge, num_div
            self.shift_pixel, self.mlp_expand_ratio = shift_pixel, mlp_expand_ratio

        def build(self, input_shapes):
            dpr = [self.stochastic_depth_rate * k / max(1, self.num_shift_blocks - 1) for k in range(self.num_shift_blocks)]
            self.shift_blocks = [ShiftViTBlock(num_div=self.num_div, epsilon=self.epsilon, drop_path_prob=dpr[k],
                                               mlp_dropout_rate=self.mlp_dropout_rate, shift_pixel=self.shift_pixel,
                                               mlp_expand_ratio=self.mlp_expand_ratio)
                                 for k in range(self.num_shift_blocks)]
            if self.is_merge:
                self.patch_merge = PatchMerging(epsilon=self.epsilon)

        def call(self, x, training=False):
            for shift_block in self.shift_blocks:
                x = shift_block(x, training=training)
            return self.patch_merge(x) if self.is_merge else x

    inputs = keras.Input(input_shape)
    x = layers.Rescaling(1 / 255.0)(layers.Resizing(image_size, image_size)(inputs))
    x = layers.Conv2D(projected_dim, kernel_size=patch_size, strides=patch_size, padding="same")(x)
    for index, num_shift_blocks in enumerate(num_shift_blocks_per_stages):
        x = StackedShiftBlocks(epsilon=epsilon, mlp_dropout_rate=mlp_dropout_rate, num_shift_blocks=num_shift_blocks,
                               stochastic_depth_rate=stochastic_depth_rate,
                               is_merge=index != len(num_shift_blocks_per_stages) - 1, num_div=num_div,
                               shift_pixel=shift_pixel, mlp_expand_ratio=mlp_expand_ratio)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes)(x), name="shiftvit")


def denoising_autoencoder(input_shape=(28, 28, 1), filters=32):
    """Keras example "Convolutional autoencoder for image denoising" (keras.io/examples/vision/
    autoencoder/; MNIST, 28 x 28 x 1): encoder Conv2D 32 3x3 ReLU 'same', MaxPooling 2 'same', twice;
    decoder Conv2DTranspose 32 3x3 stride 2 ReLU 'same', twice; Conv2D 1 3x3 sigmoid 'same'. The
    output is an image (a reconstruction), not class scores. Published size (28,353 parameters)."""
    keras, layers = _keras()
    inp = layers.Input(shape=input_shape)
    x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same")(inp)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same")(x)
    x = layers.MaxPooling2D((2, 2), padding="same")(x)
    x = layers.Conv2DTranspose(filters, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(filters, (3, 3), strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2D(input_shape[-1], (3, 3), activation="sigmoid", padding="same")(x)
    return keras.Model(inp, x, name="autoencoder")


def cct(input_shape=(32, 32, 3), num_classes=10, channels=(64, 128), heads=2, units=(128, 128), blocks=2,
        depth_rate=0.1):
    """Keras example "Compact Convolutional Transformers" (keras.io/examples/vision/cct/; Hassani et
    al. 2021, CCT; CIFAR-10 at 32x32, tokenizer widths 64 and 128, 2 heads, 2 encoder blocks, MLP
    widths 128 and 128, stochastic depth up to 0.1), its ``create_cct_model`` with the widths as
    arguments. Built from the example's own layer classes, which the compiler has to trace through
    their ``call()``:

    - the augmentation head (Rescaling 1/255, RandomCrop to the input's own size, RandomFlip);
    - ``CCTTokenizer``: a Sequential of (Conv2D 3x3 valid, no bias, ReLU; ZeroPadding2D 1;
      MaxPooling2D 3/2 same) per width, its output reshaped to a sequence from ``ops.shape``;
    - ``PositionEmbedding``: a learned (length, width) weight, sliced and broadcast to its input's
      shape from ``ops.shape``, so its ``call()`` returns a constant, added to the tokens;
    - per block (pre-norm): LayerNormalization (1e-5), MultiHeadAttention (key_dim = the token width,
      dropout 0.1), ``StochasticDepth`` (a random drop in training, its input at inference), a
      residual Add, LayerNormalization, the MLP (Dense with ``keras.ops.gelu`` as its activation,
      Dropout 0.1, per width), ``StochasticDepth`` and a residual Add;
    - LayerNormalization, then ``SequencePooling``: softmax over the sequence of a Dense(1) score,
      ``ops.transpose`` and ``ops.matmul`` with the tokens, ``ops.squeeze``; a Dense head of logits."""
    keras, layers = _keras()
    from keras import ops

    class CCTTokenizer(layers.Layer):
        def __init__(self, widths, **kwargs):
            super().__init__(**kwargs)
            self.conv_model = keras.Sequential()
            for w in widths:
                self.conv_model.add(layers.Conv2D(w, 3, 1, padding="valid", use_bias=False, activation="relu",
                                                  kernel_initializer="he_normal"))
                self.conv_model.add(layers.ZeroPadding2D(1))
                self.conv_model.add(layers.MaxPooling2D(3, 2, "same"))

        def call(self, images):
            y = self.conv_model(images)
            return ops.reshape(y, (-1, ops.shape(y)[1] * ops.shape(y)[2], ops.shape(y)[-1]))

    class PositionEmbedding(layers.Layer):
        def __init__(self, sequence_length, **kwargs):
            super().__init__(**kwargs)
            self.sequence_length = sequence_length

        def build(self, input_shape):
            self.position_embeddings = self.add_weight(name="embeddings", shape=[self.sequence_length, input_shape[-1]],
                                                       initializer="glorot_uniform", trainable=True)

        def call(self, inputs, start_index=0):
            shape = ops.shape(inputs)
            table = ops.convert_to_tensor(self.position_embeddings)
            table = ops.slice(table, (start_index, 0), (shape[-2], shape[-1]))
            return ops.broadcast_to(table, shape)

    class SequencePooling(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.attention = layers.Dense(1)

        def call(self, x):
            weights = ops.transpose(ops.softmax(self.attention(x), axis=1), axes=(0, 2, 1))
            return ops.squeeze(ops.matmul(weights, x), -2)

    class StochasticDepth(layers.Layer):
        def __init__(self, rate, **kwargs):
            super().__init__(**kwargs)
            self.rate = rate
            self.seed_generator = keras.random.SeedGenerator(1337)

        def call(self, x, training=None):
            if training:
                keep = 1 - self.rate
                shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
                return (x / keep) * ops.floor(keep + keras.random.uniform(shape, 0, 1, seed=self.seed_generator))
            return x

    inputs = layers.Input(input_shape)
    augment = keras.Sequential([layers.Rescaling(1 / 255.0), layers.RandomCrop(input_shape[0], input_shape[1]),
                                layers.RandomFlip("horizontal")])
    tokens = CCTTokenizer(channels)(augment(inputs))
    tokens += PositionEmbedding(sequence_length=tokens.shape[1])(tokens)
    for rate in [depth_rate * i / max(blocks - 1, 1) for i in range(blocks)]:  # np.linspace(0, rate, blocks)
        x1 = layers.LayerNormalization(epsilon=1e-5)(tokens)
        y = layers.MultiHeadAttention(num_heads=heads, key_dim=channels[-1], dropout=0.1)(x1, x1)
        x2 = layers.Add()([StochasticDepth(rate)(y), tokens])
        y = layers.LayerNormalization(epsilon=1e-5)(x2)
        for u in units:
            y = layers.Dropout(0.1)(layers.Dense(u, activation=ops.gelu)(y))
        tokens = layers.Add()([StochasticDepth(rate)(y), x2])
    pooled = SequencePooling()(layers.LayerNormalization(epsilon=1e-5)(tokens))
    return keras.Model(inputs, layers.Dense(num_classes)(pooled), name="cct")


def vit(input_shape=(32, 32, 3), num_classes=100, image_size=72, patch_size=6, projection_dim=64, num_heads=4,
        transformer_layers=8, mlp_head_units=(2048, 1024), mean=(129.3, 124.1, 112.4), std=(68.2, 65.4, 70.4)):
    """Keras example "Image classification with Vision Transformer" (keras.io/examples/vision/
    image_classification_with_vision_transformer/; Dosovitskiy et al. 2020), its published
    definition: an augmentation head (Normalization, Resizing to ``image_size``, RandomFlip,
    RandomRotation, RandomZoom), the example's ``Patches`` layer (``keras.ops.image.extract_patches``
    and ``ops.reshape``), its ``PatchEncoder`` (a Dense projection plus an Embedding of
    ``ops.arange(num_patches)``: a constant table), ``transformer_layers`` pre-norm blocks of
    MultiHeadAttention and a GELU MLP (``keras.activations.gelu``), then LayerNormalization, Flatten
    and a GELU MLP head to logits. The example adapts its Normalization to CIFAR-100's training
    images; ``mean``/``std`` are CIFAR-100's per-channel statistics instead. The two layer classes
    take ``**kwargs`` (the example's do not), so that Keras can rebuild them from their config."""
    keras, layers = _keras()
    ops = keras.ops
    num_patches = (image_size // patch_size) ** 2
    hidden_dim = projection_dim * num_heads

    class Patches(layers.Layer):
        def __init__(self, patch_size, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size

        def call(self, images):
            shape = ops.shape(images)
            rows, cols = shape[1] // self.patch_size, shape[2] // self.patch_size
            patches = keras.ops.image.extract_patches(images, size=self.patch_size)
            return ops.reshape(patches, (shape[0], rows * cols, self.patch_size * self.patch_size * shape[3]))

    class PatchEncoder(layers.Layer):
        def __init__(self, num_patches, projection_dim, **kwargs):
            super().__init__(**kwargs)
            self.num_patches = num_patches
            self.projection = layers.Dense(units=projection_dim)
            self.position_embedding = layers.Embedding(input_dim=num_patches, output_dim=projection_dim)

        def call(self, patch):
            positions = ops.expand_dims(ops.arange(start=0, stop=self.num_patches, step=1), axis=0)
            return self.projection(patch) + self.position_embedding(positions)

    augmentation = _vit_augmentation(image_size, mean, std)
    inputs = keras.Input(shape=input_shape)
    encoded = PatchEncoder(num_patches, hidden_dim)(Patches(patch_size)(augmentation(inputs)))
    logits = _vit_blocks_and_head(
        encoded, lambda x: layers.MultiHeadAttention(num_heads=num_heads, key_dim=projection_dim, dropout=0.1)(x, x),
        transformer_layers, [hidden_dim * 2, hidden_dim], mlp_head_units, num_classes, keras.activations.gelu)
    return keras.Model(inputs, logits, name="vit")


def mlp_classifier(block="gmlp", input_shape=(32, 32, 3), num_classes=100, image_size=64, patch_size=8,
                   embedding_dim=256, num_blocks=4, dropout_rate=0.2, mean=(129.3, 124.1, 112.4),
                   std=(68.2, 65.4, 70.4)):
    """Keras example "Image classification with modern MLP models" (keras.io/examples/vision/
    mlp_image_classification/), its Keras 3 definition: the augmentation head (Normalization,
    Resizing, RandomFlip, RandomZoom), a ``Patches`` layer (``keras.ops.image.extract_patches``), a
    Dense patch embedding, ``num_blocks`` blocks, GlobalAveragePooling1D, Dropout and Dense logits.
    ``block="mixer"``: MLP-Mixer (Tolstikhin et al. 2021; LayerNormalization, token mixing through
    ``ops.transpose`` and a GELU MLP, channel mixing); ``"gmlp"``: gMLP (Liu et al. 2021; the spatial
    gating unit halves the channels with ``ops.split``). FNet, the example's third model, needs
    ``keras.ops.fft2``: refused. ``mean``/``std`` stand for the example's adapted Normalization
    (CIFAR-100's statistics)."""
    keras, layers = _keras()
    ops = keras.ops
    num_patches = (image_size // patch_size) ** 2

    class Patches(layers.Layer):
        def __init__(self, patch_size, num_patches, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size
            self.num_patches = num_patches

        def call(self, images):
            patches = keras.ops.image.extract_patches(images, size=self.patch_size)
            return ops.reshape(patches, (ops.shape(images)[0], self.num_patches, patches.shape[-1]))

    class MLPMixerLayer(layers.Layer):
        def __init__(self, num_patches, hidden_units, dropout_rate, **kwargs):
            super().__init__(**kwargs)
            self.mlp1 = keras.Sequential([layers.Dense(num_patches, activation="gelu"), layers.Dense(num_patches),
                                          layers.Dropout(dropout_rate)])
            self.mlp2 = keras.Sequential([layers.Dense(num_patches, activation="gelu"), layers.Dense(hidden_units),
                                          layers.Dropout(dropout_rate)])
            self.normalize = layers.LayerNormalization(epsilon=1e-6)

        def call(self, inputs):
            x = self.normalize(inputs)
            x = ops.transpose(self.mlp1(ops.transpose(x, axes=(0, 2, 1))), axes=(0, 2, 1)) + inputs
            return x + self.mlp2(self.normalize(x))

    class gMLPLayer(layers.Layer):
        def __init__(self, num_patches, embedding_dim, dropout_rate, **kwargs):
            super().__init__(**kwargs)
            self.channel_projection1 = keras.Sequential([layers.Dense(embedding_dim * 2, activation="gelu"),
                                                         layers.Dropout(dropout_rate)])
            self.channel_projection2 = layers.Dense(embedding_dim)
            self.spatial_projection = layers.Dense(num_patches, bias_initializer="Ones")
            self.normalize1 = layers.LayerNormalization(epsilon=1e-6)
            self.normalize2 = layers.LayerNormalization(epsilon=1e-6)

        def spatial_gating_unit(self, x):
            u, v = ops.split(x, indices_or_sections=2, axis=2)
            v = self.normalize2(v)
            projected = ops.transpose(self.spatial_projection(ops.transpose(v, axes=(0, 2, 1))), axes=(0, 2, 1))
            return u * projected

        def call(self, inputs):
            x = self.normalize1(inputs)
            return x + self.channel_projection2(self.spatial_gating_unit(self.channel_projection1(x)))

    layer = {"mixer": MLPMixerLayer, "gmlp": gMLPLayer}[block]
    blocks = keras.Sequential([layer(num_patches, embedding_dim, dropout_rate) for _ in range(num_blocks)])
    augmentation = keras.Sequential([
        layers.Normalization(mean=list(mean), variance=[v * v for v in std]),
        layers.Resizing(image_size, image_size),
        layers.RandomFlip("horizontal"),
        layers.RandomZoom(height_factor=0.2, width_factor=0.2)], name="data_augmentation")
    inputs = layers.Input(shape=input_shape)
    x = layers.Dense(embedding_dim)(Patches(patch_size, num_patches)(augmentation(inputs)))
    representation = layers.Dropout(dropout_rate)(layers.GlobalAveragePooling1D()(blocks(x)))
    return keras.Model(inputs, layers.Dense(num_classes)(representation), name=block)


def deit(input_shape=(224, 224, 3), num_classes=5, patch_size=16, projection_dim=192, num_heads=3, num_layers=12,
         mlp_units=None, drop_path_rate=0.1, dropout_rate=0.0, layer_norm_eps=1e-6):
    """Keras example "Distilling Vision Transformers" (keras.io/examples/vision/deit/; Touvron et
    al. 2021): its ``ViTDistilled`` student, a subclassed keras.Model (patches by a strided Conv2D
    and Reshape, a class and a distillation token tiled and concatenated before the patches, a
    learned position embedding added with the weight on the left, ``num_layers`` functional
    pre-norm transformer blocks with the example's ``StochasticDepth`` (``call(x, training=True)``:
    inference must pass False), two heads averaged at inference), called after Rescaling(1/255) as
    the example's closing note writes it. Ported to Keras 3: tf.Variable -> add_weight, tf.tile /
    tf.concat / tf.shape -> keras.ops; the tokens and position embedding start random (the example's
    zeros would make them inert in an untrained model)."""
    keras, layers = _keras()
    ops = keras.ops
    num_patches = (input_shape[0] // patch_size) ** 2
    mlp_units = list(mlp_units or [projection_dim * 4, projection_dim])

    class StochasticDepth(layers.Layer):
        def __init__(self, drop_prop, **kwargs):
            super().__init__(**kwargs)
            self.drop_prob = drop_prop

        def call(self, x, training=True):
            if training:
                keep_prob = 1 - self.drop_prob
                shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
                return (x / keep_prob) * ops.floor(keep_prob + keras.random.uniform(shape, 0, 1))
            return x

    def mlp(x):
        for idx, units in enumerate(mlp_units):
            x = layers.Dropout(dropout_rate)(layers.Dense(units, activation=keras.activations.gelu if idx == 0 else None)(x))
        return x

    def transformer(drop_prob, name):
        encoded = layers.Input((num_patches + 2, projection_dim))
        x1 = layers.LayerNormalization(epsilon=layer_norm_eps)(encoded)
        attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=projection_dim, dropout=dropout_rate)(x1, x1)
        attention = StochasticDepth(drop_prob)(attention) if drop_prob else attention
        x2 = layers.Add()([attention, encoded])
        x4 = mlp(layers.LayerNormalization(epsilon=layer_norm_eps)(x2))
        x4 = StochasticDepth(drop_prob)(x4) if drop_prob else x4
        return keras.Model(encoded, layers.Add()([x2, x4]), name=name)

    class ViTDistilled(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.projection = keras.Sequential([
                layers.Conv2D(projection_dim, patch_size, strides=patch_size, padding="valid", name="conv_projection"),
                layers.Reshape((num_patches, projection_dim), name="flatten_projection")], name="projection")
            self.positional_embedding = self.add_weight(shape=(1, num_patches + 2, projection_dim),
                                                        initializer="random_normal", name="pos_embedding")
            rates = [drop_path_rate * i / max(num_layers - 1, 1) for i in range(num_layers)]  # tf.linspace
            self.transformer_blocks = [transformer(rates[i], f"transformer_block_{i}") for i in range(num_layers)]
            self.cls_token = self.add_weight(shape=(1, 1, projection_dim), initializer="random_normal", name="cls")
            self.dist_token = self.add_weight(shape=(1, 1, projection_dim), initializer="random_normal",
                                              name="dist_token")
            self.dropout = layers.Dropout(dropout_rate)
            self.layer_norm = layers.LayerNormalization(epsilon=layer_norm_eps)
            self.head = layers.Dense(num_classes, name="classification_head")
            self.head_dist = layers.Dense(num_classes, name="distillation_head")

        def call(self, inputs, training=True):
            n = ops.shape(inputs)[0]
            patches = self.projection(inputs)
            cls_token = ops.cast(ops.tile(self.cls_token, (n, 1, 1)), patches.dtype)
            dist_token = ops.cast(ops.tile(self.dist_token, (n, 1, 1)), patches.dtype)
            encoded = self.positional_embedding + ops.concatenate([cls_token, dist_token, patches], axis=1)
            encoded = self.dropout(encoded)
            for block in self.transformer_blocks:
                encoded = block(encoded)
            representation = self.layer_norm(encoded)
            x, x_dist = self.head(representation[:, 0]), self.head_dist(representation[:, 1])
            if not training:
                return (x + x_dist) / 2
            return x, x_dist

    student = ViTDistilled(name="deit_tiny_distilled")
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, student(layers.Rescaling(1.0 / 255)(inputs), training=False), name="deit")


def _vit_blocks_and_head(encoded, attend, transformer_layers, mlp_units, mlp_head_units, num_classes, activation):
    """The keras.io ViT examples' pre-norm Transformer blocks (``attend(x)``: the attention of
    normalised tokens; a Dense MLP of ``mlp_units`` with ``activation`` and Dropout; residual
    adds) and head (LayerNormalization, Flatten, Dropout, an MLP of ``mlp_head_units``, logits)."""
    _, layers = _keras()

    def mlp(x, hidden_units, dropout_rate):
        for units in hidden_units:
            x = layers.Dropout(dropout_rate)(layers.Dense(units, activation=activation)(x))
        return x

    for _ in range(transformer_layers):
        x2 = layers.Add()([attend(layers.LayerNormalization(epsilon=1e-6)(encoded)), encoded])
        encoded = layers.Add()([mlp(layers.LayerNormalization(epsilon=1e-6)(x2), mlp_units, 0.1), x2])
    representation = layers.Dropout(0.5)(layers.Flatten()(layers.LayerNormalization(epsilon=1e-6)(encoded)))
    return layers.Dense(num_classes)(mlp(representation, list(mlp_head_units), 0.5))


def _vit_augmentation(image_size, mean, std):
    """The keras.io ViT examples' augmentation head: Normalization (to ``mean`` / ``std``),
    Resizing to ``image_size``, RandomFlip, RandomRotation, RandomZoom."""
    keras, layers = _keras()
    return keras.Sequential([
        layers.Normalization(mean=list(mean), variance=[v * v for v in std]),
        layers.Resizing(image_size, image_size),
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(factor=0.02),
        layers.RandomZoom(height_factor=0.2, width_factor=0.2)], name="data_augmentation")


def multi_head_attention_lsa(**kwargs):
    """keras.io "ViT on small-scale datasets"' Locality Self-Attention: a MultiHeadAttention
    subclass whose overridden attention scales the queries by a learned temperature (initially
    sqrt(key_dim)) and computes the scores and the weighted sum with ``ops.einsum`` of the layer's
    own equations. Its ``_compute_attention`` takes the ``return_attention_scores`` Keras 3.15
    passes (the example's predates it)."""
    import math

    keras, layers = _keras()
    ops = keras.ops

    class MultiHeadAttentionLSA(layers.MultiHeadAttention):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.tau = keras.Variable(math.sqrt(float(self._key_dim)), trainable=True)

        def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                               return_attention_scores=False):
            query = ops.multiply(query, 1.0 / self.tau)
            attention_scores = ops.einsum(self._dot_product_equation, key, query)
            attention_scores = self._masked_softmax(attention_scores, attention_mask)
            attention_scores_dropout = self._dropout_layer(attention_scores, training=training)
            attention_output = ops.einsum(self._combine_equation, attention_scores_dropout, value)
            return attention_output, attention_scores

    return MultiHeadAttentionLSA(**kwargs)


def vit_small_ds(input_shape=(32, 32, 3), num_classes=100, image_size=72, patch_size=6, projection_dim=64,
                 num_heads=4, transformer_layers=8, mlp_head_units=(2048, 1024), mean=(129.3, 124.1, 112.4),
                 std=(68.2, 65.4, 70.4)):
    """Keras example "Train a Vision Transformer on small-scale datasets" (keras.io/examples/vision/
    vit_small_ds/; Lee et al. 2021): the ViT above with its two changes. Shifted Patch
    Tokenization: the image concatenated with four copies shifted diagonally by half a patch
    (``ops.image.crop_images`` then ``pad_images``), cut into patches (``extract_patches``),
    LayerNormalization and a Dense projection (the layer also returns the patches, which nothing
    reads). Locality Self-Attention: a MultiHeadAttention subclass whose overridden attention
    scales the queries by a learned temperature, computes the scores and the weighted sum with
    ``ops.einsum`` and masks each token from itself (a constant diagonal mask). Positions are an
    Embedding of ``ops.arange`` added to the tokens. As the ViT builder: Normalization to
    CIFAR-100's statistics, Resizing, random augmentations (inactive at inference). For Keras 3.15:
    the attention as ``multi_head_attention_lsa`` says, the patches' padding written 'valid' (it
    refuses 'VALID') and their strides as one number."""
    keras, layers = _keras()
    ops = keras.ops
    num_patches = (image_size // patch_size) ** 2
    half = patch_size // 2

    class ShiftedPatchTokenization(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.flatten_patches = layers.Reshape((num_patches, -1))
            self.projection = layers.Dense(units=projection_dim)
            self.layer_norm = layers.LayerNormalization(epsilon=1e-6)

        def crop_shift_pad(self, images, mode):
            crop_height, crop_width, shift_height, shift_width = {
                "left-up": (half, half, 0, 0), "left-down": (0, half, half, 0),
                "right-up": (half, 0, 0, half), "right-down": (0, 0, half, half)}[mode]
            crop = ops.image.crop_images(images, top_cropping=crop_height, left_cropping=crop_width,
                                         target_height=image_size - half, target_width=image_size - half)
            return ops.image.pad_images(crop, top_padding=shift_height, left_padding=shift_width,
                                        target_height=image_size, target_width=image_size)

        def call(self, images):
            images = ops.concatenate([images] + [self.crop_shift_pad(images, mode) for mode in
                                                 ("left-up", "left-down", "right-up", "right-down")], axis=-1)
            patches = ops.image.extract_patches(images=images, size=(patch_size, patch_size), strides=patch_size,
                                                dilation_rate=1, padding="valid")
            tokens = self.projection(self.layer_norm(self.flatten_patches(patches)))
            return tokens, patches

    class PatchEncoder(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.position_embedding = layers.Embedding(input_dim=num_patches, output_dim=projection_dim)
            self.positions = ops.arange(start=0, stop=num_patches, step=1)

        def call(self, encoded_patches):
            return encoded_patches + self.position_embedding(self.positions)

    augmentation = _vit_augmentation(image_size, mean, std)
    diag_attn_mask = ops.cast([1 - ops.eye(num_patches)], dtype="int8")
    inputs = layers.Input(shape=input_shape)
    tokens, _ = ShiftedPatchTokenization()(augmentation(inputs))
    encoded = PatchEncoder()(tokens)
    logits = _vit_blocks_and_head(
        encoded, lambda x: multi_head_attention_lsa(num_heads=num_heads, key_dim=projection_dim, dropout=0.1)(
            x, x, attention_mask=diag_attn_mask),
        transformer_layers, [projection_dim * 2, projection_dim], mlp_head_units, num_classes, "gelu")
    return keras.Model(inputs, logits, name="vit_small_ds")


# --------------------------------------------------------------------------- several inputs
def siamese_contrastive(input_shape=(28, 28, 1), embedding=10):
    """Keras example "Image similarity estimation using a Siamese Network with a contrastive loss"
    (keras.io/examples/vision/siamese_contrastive/): two images, one shared embedding network
    (a nested Model called on each: BatchNormalization, Conv2D 4 5x5 tanh, AveragePooling 2,
    Conv2D 16 5x5 tanh, AveragePooling 2, Flatten, BatchNormalization, Dense 10 tanh), their
    Euclidean distance in a Lambda (sqrt of max(sum of squares, epsilon)), BatchNormalization and
    a Dense sigmoid. Published size."""
    keras, layers = _keras()
    from keras import ops

    inp = layers.Input(input_shape)
    x = layers.BatchNormalization()(inp)
    x = layers.Conv2D(4, (5, 5), activation="tanh")(x)
    x = layers.AveragePooling2D(pool_size=(2, 2))(x)
    x = layers.Conv2D(16, (5, 5), activation="tanh")(x)
    x = layers.AveragePooling2D(pool_size=(2, 2))(x)
    x = layers.Flatten()(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dense(embedding, activation="tanh")(x)
    embedding_network = keras.Model(inp, x)

    def euclidean_distance(vects):
        a, b = vects
        sum_square = ops.sum(ops.square(a - b), axis=1, keepdims=True)
        return ops.sqrt(ops.maximum(sum_square, keras.backend.epsilon()))

    input_1, input_2 = layers.Input(input_shape), layers.Input(input_shape)
    tower_1, tower_2 = embedding_network(input_1), embedding_network(input_2)
    merged = layers.Lambda(euclidean_distance, output_shape=(1,))([tower_1, tower_2])
    merged = layers.BatchNormalization()(merged)
    output = layers.Dense(1, activation="sigmoid")(merged)
    return keras.Model(inputs=[input_1, input_2], outputs=output, name="siamese")


def ddim_unet(image_size=64, widths=(32, 64, 96, 128), block_depth=2, embedding_dims=32,
              embedding_max_frequency=1000.0):
    """Keras example "Denoising Diffusion Implicit Models" (keras.io/examples/generative/ddim/):
    the residual U-Net that predicts the noise. Two inputs, the noisy images and their noise
    variances (1 x 1 x 1); the variance's sinusoidal embedding (a Lambda of sin and cos at
    exponentially spaced frequencies) upsampled to the image size (nearest) and concatenated
    with a 1x1 conv of the images; down blocks of residual blocks (BatchNormalization without
    center and scale, Conv 3x3 swish, Conv 3x3, add; a 1x1 conv shortcut where widths change)
    and AveragePooling, residual blocks at the bottom, up blocks of bilinear UpSampling,
    concatenation with the skips and residual blocks; a zero-initialised 1x1 conv out."""
    import math

    keras, layers = _keras()
    from keras import ops

    def sinusoidal_embedding(x):
        frequencies = ops.exp(ops.linspace(ops.log(1.0), ops.log(embedding_max_frequency), embedding_dims // 2))
        angular_speeds = ops.cast(2.0 * math.pi * frequencies, "float32")
        return ops.concatenate([ops.sin(angular_speeds * x), ops.cos(angular_speeds * x)], axis=3)

    def residual_block(width):
        def apply(x):
            residual = x if x.shape[3] == width else layers.Conv2D(width, kernel_size=1)(x)
            x = layers.BatchNormalization(center=False, scale=False)(x)
            x = layers.Conv2D(width, kernel_size=3, padding="same", activation="swish")(x)
            x = layers.Conv2D(width, kernel_size=3, padding="same")(x)
            return layers.Add()([x, residual])
        return apply

    def down_block(width):
        def apply(x):
            x, skips = x
            for _ in range(block_depth):
                x = residual_block(width)(x)
                skips.append(x)
            return layers.AveragePooling2D(pool_size=2)(x)
        return apply

    def up_block(width):
        def apply(x):
            x, skips = x
            x = layers.UpSampling2D(size=2, interpolation="bilinear")(x)
            for _ in range(block_depth):
                x = layers.Concatenate()([x, skips.pop()])
                x = residual_block(width)(x)
            return x
        return apply

    noisy_images = keras.Input(shape=(image_size, image_size, 3))
    noise_variances = keras.Input(shape=(1, 1, 1))
    e = layers.Lambda(sinusoidal_embedding, output_shape=(1, 1, embedding_dims))(noise_variances)
    e = layers.UpSampling2D(size=image_size, interpolation="nearest")(e)
    x = layers.Conv2D(widths[0], kernel_size=1)(noisy_images)
    x = layers.Concatenate()([x, e])
    skips = []
    for width in widths[:-1]:
        x = down_block(width)([x, skips])
    for _ in range(block_depth):
        x = residual_block(widths[-1])(x)
    for width in reversed(widths[:-1]):
        x = up_block(width)([x, skips])
    x = layers.Conv2D(3, kernel_size=1, kernel_initializer="zeros")(x)
    return keras.Model([noisy_images, noise_variances], x, name="residual_unet")


def swin(input_shape=(32, 32, 3), num_classes=100, patch_size=(2, 2), num_heads=8, embed_dim=64, num_mlp=256,
         qkv_bias=True, window_size=2, shift_size=1, drop_rate=0.03):
    """Keras example "Image classification with Swin Transformers" (keras.io/examples/vision/
    swin_transformers/; Liu et al. 2021), its defaults as arguments (152K parameters, CIFAR-100):
    ``PatchExtract`` (keras.ops.image.extract_patches), ``PatchEmbedding`` (Dense plus an
    Embedding of the patch positions), two ``SwinTransformer`` blocks (the second with shifted
    windows: a roll of the map, and the example's attention mask of -100 between windows' regions
    built in ``build()``), ``PatchMerging`` (strided slices concatenated, a Dense without bias),
    global average pooling and a softmax Dense. Each block: LayerNormalization, the window
    partition (reshape, transpose, reshape: windows move into the batch axis), ``WindowAttention``
    (a Dense to q, k, v reshaped and transposed to (3, windows, heads, tokens, head size) and
    indexed, ``q @ k^T`` plus the relative position bias taken from its learned table (zeros at
    first, as published), the mask added per window, softmax, ``@ v``, a projection), the window
    reverse, a residual, LayerNormalization, an MLP (Dense, GELU, Dense) and a residual.
    Ported to Keras 3 as a user writes it: tf.* -> keras.ops (reshape, transpose, roll, take,
    expand_dims, extract_patches, concatenate, arange), its variables made in ``build()`` by
    ``add_weight`` with a Constant initializer (Keras 3.15 refuses ``keras.Variable`` there);
    the mask cast to the attention's dtype (the example: "float32"; netutil's float64 twin adds
    it to float64 scores); DropPath as Dropout (the identity at inference), as the Keras 3 port
    does. (That port feeds
    the patches, extracted in tf.data; here the model extracts them, as the original did.)"""
    import numpy as np

    keras, layers = _keras()
    from keras import ops

    def window_partition(x, window_size):
        _, height, width, channels = x.shape
        x = ops.reshape(x, (-1, height // window_size, window_size, width // window_size, window_size, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, window_size, window_size, channels))

    def window_reverse(windows, window_size, height, width, channels):
        x = ops.reshape(windows, (-1, height // window_size, width // window_size, window_size, window_size,
                                  channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, height, width, channels))

    class WindowAttention(layers.Layer):
        def __init__(self, dim, window_size, num_heads, qkv_bias=True, dropout_rate=0.0, **kwargs):
            super().__init__(**kwargs)
            self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
            self.scale = (dim // num_heads) ** -0.5
            self.qkv = layers.Dense(dim * 3, use_bias=qkv_bias)
            self.dropout = layers.Dropout(dropout_rate)
            self.proj = layers.Dense(dim)

        def build(self, input_shape):
            elements = (2 * self.window_size[0] - 1) * (2 * self.window_size[1] - 1)
            self.relative_position_bias_table = self.add_weight(shape=(elements, self.num_heads),
                                                                initializer="zeros", trainable=True)
            coords = np.stack(np.meshgrid(np.arange(self.window_size[0]), np.arange(self.window_size[1]),
                                          indexing="ij")).reshape(2, -1)
            relative = (coords[:, :, None] - coords[:, None, :]).transpose([1, 2, 0])
            relative[:, :, 0] += self.window_size[0] - 1
            relative[:, :, 1] += self.window_size[1] - 1
            relative[:, :, 0] *= 2 * self.window_size[1] - 1
            index = relative.sum(-1)
            self.relative_position_index = self.add_weight(shape=index.shape, dtype="int32", trainable=False,
                                                           initializer=keras.initializers.Constant(index))

        def call(self, x, mask=None):
            _, size, channels = x.shape
            head_dim = channels // self.num_heads
            x_qkv = self.qkv(x)
            x_qkv = ops.reshape(x_qkv, (-1, size, 3, self.num_heads, head_dim))
            x_qkv = ops.transpose(x_qkv, (2, 0, 3, 1, 4))
            q, k, v = x_qkv[0], x_qkv[1], x_qkv[2]
            q = q * self.scale
            k = ops.transpose(k, (0, 1, 3, 2))
            attn = q @ k
            elements = self.window_size[0] * self.window_size[1]
            bias = ops.take(self.relative_position_bias_table, ops.reshape(self.relative_position_index, (-1,)),
                            axis=0)
            bias = ops.transpose(ops.reshape(bias, (elements, elements, -1)), (2, 0, 1))
            attn = attn + ops.expand_dims(bias, axis=0)
            if mask is not None:
                windows = mask.shape[0]
                mask_float = ops.cast(ops.expand_dims(ops.expand_dims(mask, axis=1), axis=0), attn.dtype)
                attn = ops.reshape(attn, (-1, windows, self.num_heads, size, size)) + mask_float
                attn = ops.reshape(attn, (-1, self.num_heads, size, size))
            attn = self.dropout(keras.activations.softmax(attn, axis=-1))
            x_qkv = ops.transpose(attn @ v, (0, 2, 1, 3))
            x_qkv = ops.reshape(x_qkv, (-1, size, channels))
            return self.dropout(self.proj(x_qkv))

    class SwinTransformer(layers.Layer):
        def __init__(self, dim, num_patch, num_heads, window_size=7, shift_size=0, num_mlp=1024, qkv_bias=True,
                     dropout_rate=0.0, **kwargs):
            super().__init__(**kwargs)
            self.dim, self.num_patch, self.num_heads = dim, num_patch, num_heads
            self.window_size, self.shift_size, self.num_mlp = window_size, shift_size, num_mlp
            self.norm1 = layers.LayerNormalization(epsilon=1e-5)
            self.attn = WindowAttention(dim, window_size=(window_size, window_size), num_heads=num_heads,
                                        qkv_bias=qkv_bias, dropout_rate=dropout_rate)
            self.drop_path = layers.Dropout(dropout_rate)
            self.norm2 = layers.LayerNormalization(epsilon=1e-5)
            self.mlp = keras.Sequential([layers.Dense(num_mlp), layers.Activation(keras.activations.gelu),
                                         layers.Dropout(dropout_rate), layers.Dense(dim), layers.Dropout(dropout_rate)])
            if min(self.num_patch) < self.window_size:
                self.shift_size, self.window_size = 0, min(self.num_patch)

        def build(self, input_shape):
            if self.shift_size == 0:
                self.attn_mask = None
                return
            height, width = self.num_patch
            cuts = (slice(0, -self.window_size), slice(-self.window_size, -self.shift_size),
                    slice(-self.shift_size, None))
            regions = np.zeros((1, height, width, 1))
            for count, (h, w) in enumerate((h, w) for h in cuts for w in cuts):
                regions[:, h, w, :] = count
            windows = regions.reshape(1, height // self.window_size, self.window_size, width // self.window_size,
                                      self.window_size, 1).transpose(0, 1, 3, 2, 4, 5)
            windows = windows.reshape(-1, self.window_size * self.window_size)
            mask = windows[:, None, :] - windows[:, :, None]
            mask = np.where(mask != 0, -100.0, 0.0)
            self.attn_mask = self.add_weight(shape=mask.shape, trainable=False,
                                             initializer=keras.initializers.Constant(mask))

        def call(self, x, training=False):
            height, width = self.num_patch
            _, _, channels = x.shape
            x_skip = x
            x = ops.reshape(self.norm1(x), (-1, height, width, channels))
            if self.shift_size > 0:
                x = ops.roll(x, shift=[-self.shift_size, -self.shift_size], axis=[1, 2])
            x_windows = window_partition(x, self.window_size)
            x_windows = ops.reshape(x_windows, (-1, self.window_size * self.window_size, channels))
            attn_windows = self.attn(x_windows, mask=self.attn_mask)
            attn_windows = ops.reshape(attn_windows, (-1, self.window_size, self.window_size, channels))
            x = window_reverse(attn_windows, self.window_size, height, width, channels)
            if self.shift_size > 0:
                x = ops.roll(x, shift=[self.shift_size, self.shift_size], axis=[1, 2])
            x = ops.reshape(x, (-1, height * width, channels))
            x = x_skip + self.drop_path(x, training=training)
            return x + self.drop_path(self.mlp(self.norm2(x)), training=training)

    class PatchExtract(layers.Layer):
        def __init__(self, patch_size, **kwargs):
            super().__init__(**kwargs)
            self.patch_size_x, self.patch_size_y = patch_size[0], patch_size[0]

        def call(self, images):
            patches = ops.image.extract_patches(images, size=(self.patch_size_x, self.patch_size_y),
                                                strides=(self.patch_size_x, self.patch_size_y), padding="valid")
            patch_dim, patch_num = patches.shape[-1], patches.shape[1]
            return ops.reshape(patches, (-1, patch_num * patch_num, patch_dim))

    class PatchEmbedding(layers.Layer):
        def __init__(self, num_patch, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.num_patch = num_patch
            self.proj = layers.Dense(embed_dim)
            self.pos_embed = layers.Embedding(input_dim=num_patch, output_dim=embed_dim)

        def call(self, patch):
            return self.proj(patch) + self.pos_embed(ops.arange(start=0, stop=self.num_patch, step=1))

    class PatchMerging(layers.Layer):
        def __init__(self, num_patch, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.num_patch, self.embed_dim = num_patch, embed_dim
            self.linear_trans = layers.Dense(2 * embed_dim, use_bias=False)

        def call(self, x):
            height, width = self.num_patch
            _, _, channels = x.shape
            x = ops.reshape(x, (-1, height, width, channels))
            x = ops.concatenate((x[:, 0::2, 0::2, :], x[:, 1::2, 0::2, :], x[:, 0::2, 1::2, :],
                                 x[:, 1::2, 1::2, :]), axis=-1)
            x = ops.reshape(x, (-1, (height // 2) * (width // 2), 4 * channels))
            return self.linear_trans(x)

    num_patch_x, num_patch_y = input_shape[0] // patch_size[0], input_shape[1] // patch_size[1]
    inputs = layers.Input(input_shape)
    x = PatchEmbedding(num_patch_x * num_patch_y, embed_dim)(PatchExtract(patch_size)(inputs))
    for shift in (0, shift_size):
        x = SwinTransformer(dim=embed_dim, num_patch=(num_patch_x, num_patch_y), num_heads=num_heads,
                            window_size=window_size, shift_size=shift, num_mlp=num_mlp, qkv_bias=qkv_bias,
                            dropout_rate=drop_rate)(x)
    x = PatchMerging((num_patch_x, num_patch_y), embed_dim=embed_dim)(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x), name="swin")


def perceiver_cross_attention(latent_dim=256, data_dim=1024, projection_dim=256, ffn_units=(256, 256), iterations=2,
                              num_classes=100, dropout_rate=0.2):
    """Keras example "Image classification with Perceiver" (keras.io/examples/vision/perceiver/):
    its cross-attention module, a functional Model of two inputs given as a dict ("latent_array",
    "data_array"): LayerNormalization of each, Dense query / key / value, Attention(use_scale)
    of the latents over the data, a residual add, LayerNormalization, the example's feedforward
    (a Sequential of Dense GELU, Dense, Dropout) and a residual add. As the example's Perceiver
    calls it: ``iterations`` times, the latents of one call going into the next with the same
    data (here the latents and the encoded data are the outer model's two inputs: the example
    makes them from a trainable table and image patches). Then global average pooling and a
    Dense head (the example puts its Transformer between the calls)."""
    keras, layers = _keras()

    def ffn():
        return keras.Sequential([layers.Dense(u, activation="gelu") for u in ffn_units[:-1]]
                                + [layers.Dense(ffn_units[-1]), layers.Dropout(dropout_rate)])

    inputs = {"latent_array": layers.Input(shape=(latent_dim, projection_dim), name="latent_array"),
              "data_array": layers.Input(shape=(data_dim, projection_dim), name="data_array")}
    latent_array = layers.LayerNormalization(epsilon=1e-6)(inputs["latent_array"])
    data_array = layers.LayerNormalization(epsilon=1e-6)(inputs["data_array"])
    query = layers.Dense(units=projection_dim)(latent_array)
    key = layers.Dense(units=projection_dim)(data_array)
    value = layers.Dense(units=projection_dim)(data_array)
    attention = layers.Attention(use_scale=True, dropout=0.1)([query, key, value], return_attention_scores=False)
    attention = layers.Add()([attention, latent_array])
    attention = layers.LayerNormalization(epsilon=1e-6)(attention)
    outputs = layers.Add()([ffn()(attention), attention])
    cross_attention = keras.Model(inputs=inputs, outputs=outputs, name="cross_attention")

    latents = layers.Input((latent_dim, projection_dim), name="latents")
    data = layers.Input((data_dim, projection_dim), name="encoded_patches")
    x = latents
    for _ in range(iterations):
        x = cross_attention({"latent_array": x, "data_array": data})
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model([latents, data], layers.Dense(num_classes)(x), name="perceiver")


# --------------------------------------------------------------------------- the suite
Entry = Tuple[Callable, Dict, Dict]

#: name -> (builder, kwargs, options) of every configuration the conformance suite runs. Sizes are
#: the published ones where that stays fast; otherwise reduced (noted).
MODELS: Dict[str, Entry] = {
    # MLPerf Tiny v1 references at their published sizes
    "mlperf_resnet8": (resnet8, dict(), {}),
    "mlperf_vww_mobilenet_v1": (mobilenet_v1_vww, dict(), {}),
    "mlperf_kws_ds_cnn": (ds_cnn, dict(), {}),
    "mlperf_ad_autoencoder": (fc_autoencoder, dict(), {"regression": True}),
    # keras.applications
    "keras_mobilenet_96x96x3": (keras_mobilenet, dict(input_shape=(96, 96, 3), num_classes=2, alpha=0.25), {}),
    "keras_mobilenet_64x64x1": (keras_mobilenet, dict(input_shape=(64, 64, 1), num_classes=4, alpha=0.25), {}),
    "keras_mobilenet_v2": (keras_mobilenet_v2, dict(input_shape=(32, 32, 3), num_classes=5, alpha=0.35), {}),
    "keras_efficientnet_tiny": (keras_efficientnet, dict(), {"input_range": 255.0}),
    "keras_resnet_small": (keras_resnet, dict(), {}),
    "keras_resnet_v2_small": (keras_resnet, dict(preact=True), {}),
    "keras_densenet_small": (keras_densenet, dict(), {}),
    "keras_efficientnet_v2_tiny": (keras_efficientnet_v2, dict(), {"input_range": 255.0}),
    "keras_nasnet_tiny": (keras_nasnet, dict(), {}),
    "keras_convnext_tiny": (keras_convnext, dict(), {"input_range": 255.0}),
    "keras_inception_resnet_tiny": (keras_inception_resnet, dict(), {}),
}
# MobileNetV3 at width 0.35 (a published multiplier) keeps the header under ~0.9M weights each
for _size in ("small", "large"):
    for _mini in (False, True):
        for _pre in (False, True):
            MODELS[f"keras_mobilenet_v3_{_size}{'_minimalistic' if _mini else ''}{'_preproc' if _pre else ''}"] = (
                keras_mobilenet_v3, dict(size=_size, input_shape=(32, 32, 3), num_classes=5, alpha=0.35,
                                         minimalistic=_mini, include_preprocessing=_pre),
                {"input_range": 255.0} if _pre else {})
MODELS.update({
    # Keras examples
    "keras_example_mnist_convnet": (mnist_convnet, dict(), {}),
    # the tutorial's 128-unit layer over 14 x 14 x 64 features has 1.6M weights: reduced to 16 x 16
    # spectrogram pixels, 8 and 16 filters, 16 units (a multiple of 4, as 128 is)
    "tf_simple_audio": (simple_audio, dict(input_shape=(62, 65, 1), size=16, filters=(8, 16), units=16, mean=0.3,
                                           variance=0.2), {}),
    # LeNet's random nets are often ill-conditioned (Keras float32 vs float64 over 20 livened
    # seeds: 3.2e-6 .. 1.3e-4, one 1.0): twelve seeds find a fair one
    "lenet5": (lenet5, dict(), {"tries": 12}),
    "mobilefacenet": (mobilefacenet, dict(input_shape=(64, 64, 3), embedding=32, width=0.25), {"regression": True}),
    "yolov2_tiny": (yolov2_tiny, dict(input_shape=(96, 96, 3), anchors=5, num_classes=2, width=0.0625), {"regression": True}),
    "keras_example_convmixer": (convmixer, dict(), {"input_range": 255.0}),
    "keras_example_xception_small": (xception_from_scratch, dict(input_shape=(48, 48, 3), num_classes=4, entry=8,
                                                                  sizes=(16, 32), final=48), {"input_range": 255.0}),
    # classic small nets, reduced
    "squeezenet_v1_1": (squeezenet, dict(input_shape=(48, 48, 3), num_classes=10, width=0.25), {}),
    "shufflenet_v2_stage": (shufflenet_v2_stage, dict(), {}),
    "conv1d_accelerometer": (conv1d_accelerometer, dict(), {}),
    "keras_example_timeseries_transformer": (timeseries_transformer, dict(), {}),
    "keras_example_segmentation_unet": (segmentation_unet, dict(input_shape=(32, 32, 3), entry=8, down=(8, 16, 16),
                                                                 up=(16, 16, 8, 8)), {}),
    # at the example's widths and upscale 3; a 12 x 12 input (the example trains on 100 x 100 crops)
    "keras_example_espcn": (espcn, dict(input_shape=(12, 12, 1)), {"regression": True}),
    # 16 x 16 pixels resized to 24 x 24 (36 patches), width 16, SE ratio 4 (published: 32 -> 48, 256, 8)
    "keras_example_patch_convnet": (patch_convnet, dict(input_shape=(16, 16, 3), image_size=24, dimensions=16,
                                                        se_ratio=4), {"input_range": 255.0}),
    # 64 x 64 (the smallest input whose last MobileViT block is 2 x 2), widths reduced from 16 /
    # (16, 24, 48, 64, 80) / (64, 80, 96) / 320; 2 / 4 / 3 transformer layers as published
    "keras_example_mobilevit": (mobilevit, dict(input_shape=(64, 64, 3), num_classes=5, stem=8,
                                                channels=(8, 12, 16, 16, 24), dims=(16, 16, 24), head=32),
                                {"input_range": 255.0}),
    # 16 x 16 x 3 images, published widths (32 filters, 8 curve maps)
    "keras_example_zero_dce": (zero_dce, dict(input_shape=(16, 16, 3)), {"regression": True}),
    # published sizes
    "keras_example_involution": (involution_net, dict(), {}),
    "keras_example_denoising_autoencoder": (denoising_autoencoder, dict(), {"regression": True}),
    # 20 x 20 pixels resized to 32 x 32, 4 x 4 patches (an 8 x 8 map), width 8 in 4 groups, one block a
    # stage over three stages (published: 32 -> 48, width 96 in 8 groups of 12, 2/4/8/2 blocks)
    "keras_example_shiftvit": (shiftvit, dict(input_shape=(20, 20, 3), image_size=32, projected_dim=8,
                                              num_shift_blocks_per_stages=(1, 1, 1), num_div=2),
                               {"input_range": 255.0}),
    # 8 x 8 images, 16 filters, 2 residual blocks (published: 64 filters, 16 blocks, any size)
    "keras_example_edsr": (edsr, dict(input_shape=(8, 8, 3), filters=16, res_blocks=2),
                           {"regression": True, "input_range": 255.0}),
    # 16 x 16 pixels (16 tokens), tokenizer widths 8 and 16, MLP widths 16
    "keras_example_cct": (cct, dict(input_shape=(16, 16, 3), num_classes=5, channels=(8, 16), units=(16, 16)),
                          {"input_range": 255.0}),
    # 20 x 20 pixels resized to 16 x 16, 4 x 4 patches (16 tokens), 2 heads of 8, 2 blocks, head 16/8
    "keras_example_vit": (vit, dict(input_shape=(20, 20, 3), num_classes=10, image_size=16, patch_size=4,
                                    projection_dim=8, num_heads=2, transformer_layers=2, mlp_head_units=(16, 8)),
                          {"input_range": 255.0}),
    # 20 x 20 pixels resized to 16 x 16, 4 x 4 patches (16 tokens), embedding 16, 2 blocks
    # 16 x 16 pixels, 4 x 4 patches (16 tokens and the two), projection 16, 2 heads, 2 blocks
    "keras_example_deit": (deit, dict(input_shape=(16, 16, 3), patch_size=4, projection_dim=16, num_heads=2,
                                      num_layers=2, mlp_units=(32, 16)), {"input_range": 255.0}),
    "keras_example_gmlp": (mlp_classifier, dict(block="gmlp", input_shape=(20, 20, 3), num_classes=10, image_size=16,
                                                patch_size=4, embedding_dim=16, num_blocks=2), {"input_range": 255.0}),
    "keras_example_mlp_mixer": (mlp_classifier, dict(block="mixer", input_shape=(20, 20, 3), num_classes=10,
                                                     image_size=16, patch_size=4, embedding_dim=16, num_blocks=2),
                                {"input_range": 255.0}),
    # 20 x 20 pixels resized to 16 x 16, 4 x 4 patches (16 tokens), projection 8, 2 heads, 2 blocks
    "keras_example_vit_small_ds": (vit_small_ds, dict(input_shape=(20, 20, 3), num_classes=10, image_size=16,
                                                      patch_size=4, projection_dim=8, num_heads=2,
                                                      transformer_layers=2, mlp_head_units=(16, 8)),
                                   {"input_range": 255.0}),
    # several inputs
    "keras_example_siamese_contrastive": (siamese_contrastive, dict(), {"regression": True}),
    # 16 x 16 images, widths 8/16/24, one residual block per level (published: 64 x 64, 32..128, 2)
    "keras_example_ddim_unet": (ddim_unet, dict(image_size=16, widths=(8, 16, 24), block_depth=1),
                                {"regression": True}),
    # 16 x 16 pixels, 2 x 2 patches (an 8 x 8 map: 16 windows of 2 x 2, shifted by 1 in the second
    # block), embedding 16, 2 heads, MLP 32, 10 classes (published: 32 x 32, 64, 8 heads, 256, 100)
    "keras_example_swin": (swin, dict(input_shape=(16, 16, 3), num_classes=10, num_heads=2, embed_dim=16, num_mlp=32),
                           {}),
    # 4 latents, 16 data tokens, projection 8, feedforward 16/8, 3 classes (published: 256, 1024, 256)
    "keras_example_perceiver_cross_attention": (perceiver_cross_attention, dict(latent_dim=4, data_dim=16,
                                                projection_dim=8, ffn_units=(16, 8), num_classes=3), {}),
})


def build(name: str):
    """(a fresh uncompiled keras.Model, options) for the configuration ``name`` of MODELS."""
    fn, kwargs, options = MODELS[name]
    return fn(**kwargs), dict(options)


#: configurations benchmarks/conformance.py runs and the test suite does not (CI time): MobileNetV3-
#: Large (31 s of test time) has no layer kind that Small does not test (3x3 and 5x5 depthwise at
#: stride 1 and 2, squeeze-excite with hard sigmoid, hard swish, ReLU), and the minimalistic variants
#: only a subset of it; Small with and without Rescaling stay. MLP-Mixer has no layer kind that gMLP (a
#: split of channels, transposed Dense over tokens, LayerNormalization, GELU) and ViT (patches) lack
BENCHMARK_ONLY = ("keras_mobilenet_v3_large", "keras_mobilenet_v3_large_minimalistic", "keras_mobilenet_v3_large_preproc",
                  "keras_mobilenet_v3_large_minimalistic_preproc", "keras_mobilenet_v3_small_minimalistic",
                  "keras_mobilenet_v3_small_minimalistic_preproc", "keras_example_mlp_mixer")


def names() -> Sequence[str]:
    return list(MODELS)


def tested_names() -> Sequence[str]:
    """MODELS but BENCHMARK_ONLY: the configurations test_conformance.py runs."""
    return [n for n in MODELS if n not in BENCHMARK_ONLY]
