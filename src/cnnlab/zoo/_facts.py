"""The zoo's published facts, stored, so that ``cnnlab models`` answers without importing
torch (about 2 s on these machines) or building anything.

:data:`FACTS` is written from the live registry by ``python -m cnnlab.zoo._facts``; a test
holds it equal to the registry, so a model added or changed without rewriting it fails the
suite with that command in the message.
"""

from __future__ import annotations

from typing import Any

from cnnlab.zoo._registry import matches

__all__ = ["FACTS", "facts"]

# name, aliases, params, macs, input (C, H, W), classes, paper, published error
FACTS: tuple[dict[str, Any], ...] = ({'name': 'lenet5',
  'aliases': [],
  'params': 60850,
  'macs': 326520,
  'input_size': [1, 32, 32],
  'num_classes': 10,
  'paper': 'LeCun, Bottou, Bengio & Haffner 1998, Gradient-Based Learning Applied to Document '
           'Recognition (Proc. IEEE 86(11))',
  'top5': 'MNIST error 0.95% (test, RBF output; 0.8% with distorted training data)'},
 {'name': 'lenet5_modern',
  'aliases': [],
  'params': 61706,
  'macs': 416520,
  'input_size': [1, 32, 32],
  'num_classes': 10,
  'paper': 'LeCun, Bottou, Bengio & Haffner 1998, Gradient-Based Learning Applied to Document '
           'Recognition (Proc. IEEE 86(11))',
  'top5': None},
 {'name': 'alexnet',
  'aliases': [],
  'params': 60965224,
  'macs': 724406816,
  'input_size': [3, 227, 227],
  'num_classes': 1000,
  'paper': 'Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep CNNs (NIPS)',
  'top5': '16.4% (ILSVRC-2012 test, 5 CNNs; 1 CNN: 18.2% val; paper Table 2)'},
 {'name': 'alexnet_onetower',
  'aliases': [],
  'params': 61100840,
  'macs': 714188480,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Krizhevsky 2014, One Weird Trick for Parallelizing CNNs (arXiv:1404.5997)',
  'top5': "20.9% (ImageNet val, 1 crop, torchvision's weights: acc@5 79.066)"},
 {'name': 'zfnet',
  'aliases': [],
  'params': 62357608,
  'macs': 1168032896,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Zeiler & Fergus 2014, Visualizing and Understanding CNNs (ECCV; arXiv:1311.2901)',
  'top5': '16.5% (ILSVRC-2012 val, 1 net; 6 nets: 14.8% test; paper Table 2)'},
 {'name': 'vgg_a',
  'aliases': ['vgg11'],
  'params': 132863336,
  'macs': 7609090048,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556)',
  'top5': '10.4% (ILSVRC-2012 val, 1 net, scale 256; paper Table 3)'},
 {'name': 'vgg_a_lrn',
  'aliases': [],
  'params': 132863336,
  'macs': 7609090048,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556)',
  'top5': '10.5% (ILSVRC-2012 val, 1 net, scale 256; paper Table 3)'},
 {'name': 'vgg_b',
  'aliases': ['vgg13'],
  'params': 133047848,
  'macs': 11308466176,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556)',
  'top5': '9.9% (ILSVRC-2012 val, 1 net, scale 256; paper Table 3)'},
 {'name': 'vgg_c',
  'aliases': [],
  'params': 133638952,
  'macs': 11770888192,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556)',
  'top5': '9.4% (ILSVRC-2012 val, 1 net, scale 256; paper Table 3)'},
 {'name': 'vgg_d',
  'aliases': ['vgg16'],
  'params': 138357544,
  'macs': 15470264320,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556)',
  'top5': '8.8% (ILSVRC-2012 val, 1 net, scale 256; paper Table 3)'},
 {'name': 'vgg_e',
  'aliases': ['vgg19'],
  'params': 143667240,
  'macs': 19632062464,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556)',
  'top5': '9.0% (ILSVRC-2012 val, 1 net, scale 256; paper Table 3)'},
 {'name': 'vgg_a_bn',
  'aliases': ['vgg11_bn'],
  'params': 132868840,
  'macs': 7609090048,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556); '
           'BatchNorm after each conv as in torchvision',
  'top5': None},
 {'name': 'vgg_b_bn',
  'aliases': ['vgg13_bn'],
  'params': 133053736,
  'macs': 11308466176,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556); '
           'BatchNorm after each conv as in torchvision',
  'top5': None},
 {'name': 'vgg_c_bn',
  'aliases': [],
  'params': 133647400,
  'macs': 11770888192,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556); '
           'BatchNorm after each conv as in torchvision',
  'top5': None},
 {'name': 'vgg_d_bn',
  'aliases': ['vgg16_bn'],
  'params': 138365992,
  'macs': 15470264320,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556); '
           'BatchNorm after each conv as in torchvision',
  'top5': None},
 {'name': 'vgg_e_bn',
  'aliases': ['vgg19_bn'],
  'params': 143678248,
  'macs': 19632062464,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556); '
           'BatchNorm after each conv as in torchvision',
  'top5': None},
 {'name': 'googlenet',
  'aliases': [],
  'params': 6998552,
  'macs': 1582671872,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'Szegedy et al. 2015, Going Deeper with Convolutions (CVPR; arXiv:1409.4842)',
  'top5': '6.67% (ILSVRC-2014 test, 7 models x 144 crops; 1 model, 1 crop: 10.07%; paper '
          'Tables 2, 3)'},
 {'name': 'resnet18',
  'aliases': [],
  'params': 11689512,
  'macs': 1814073344,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; '
           'arXiv:1512.03385)',
  'top5': "10.92% (ImageNet val, 1 crop, torchvision's weights)"},
 {'name': 'resnet34',
  'aliases': [],
  'params': 21797672,
  'macs': 3663761408,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; '
           'arXiv:1512.03385)',
  'top5': '7.46% (ImageNet val, 10 crops, option B; Table 3)'},
 {'name': 'resnet50',
  'aliases': [],
  'params': 25557032,
  'macs': 4089184256,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; '
           'arXiv:1512.03385)',
  'top5': '6.71% (ImageNet val, 10 crops; Table 3)'},
 {'name': 'resnet101',
  'aliases': [],
  'params': 44549160,
  'macs': 7801405440,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; '
           'arXiv:1512.03385)',
  'top5': '6.05% (ImageNet val, 10 crops; Table 3)'},
 {'name': 'resnet152',
  'aliases': [],
  'params': 60192808,
  'macs': 11513626624,
  'input_size': [3, 224, 224],
  'num_classes': 1000,
  'paper': 'He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; '
           'arXiv:1512.03385)',
  'top5': '5.71% (ImageNet val, 10 crops; Table 3); ensemble: 3.57% test (Table 5)'},
 {'name': 'resnet20',
  'aliases': [],
  'params': 269722,
  'macs': 40551040,
  'input_size': [3, 32, 32],
  'num_classes': 10,
  'paper': 'He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; '
           'arXiv:1512.03385)',
  'top5': 'CIFAR-10 error 8.75% (top-1, test; Table 6)'},
 {'name': 'resnet32',
  'aliases': [],
  'params': 464154,
  'macs': 68862592,
  'input_size': [3, 32, 32],
  'num_classes': 10,
  'paper': 'He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; '
           'arXiv:1512.03385)',
  'top5': 'CIFAR-10 error 7.51% (top-1, test; Table 6)'},
 {'name': 'resnet44',
  'aliases': [],
  'params': 658586,
  'macs': 97174144,
  'input_size': [3, 32, 32],
  'num_classes': 10,
  'paper': 'He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; '
           'arXiv:1512.03385)',
  'top5': 'CIFAR-10 error 7.17% (top-1, test; Table 6)'},
 {'name': 'resnet56',
  'aliases': [],
  'params': 853018,
  'macs': 125485696,
  'input_size': [3, 32, 32],
  'num_classes': 10,
  'paper': 'He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; '
           'arXiv:1512.03385)',
  'top5': 'CIFAR-10 error 6.97% (top-1, test; Table 6)'},
 {'name': 'resnet110',
  'aliases': [],
  'params': 1727962,
  'macs': 252887680,
  'input_size': [3, 32, 32],
  'num_classes': 10,
  'paper': 'He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; '
           'arXiv:1512.03385)',
  'top5': 'CIFAR-10 error 6.43% best of 5, mean 6.61 +- 0.16 (top-1, test; Table 6)'},
 {'name': 'resnet1202',
  'aliases': [],
  'params': 19421274,
  'macs': 2829238912,
  'input_size': [3, 32, 32],
  'num_classes': 10,
  'paper': 'He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR; '
           'arXiv:1512.03385)',
  'top5': 'CIFAR-10 error 7.93% (top-1, test; Table 6)'})  # fmt: skip


def facts(pattern: str = "*") -> list[dict[str, Any]]:
    """The stored facts of the models ``pattern`` matches, as ``list_models`` matches."""
    return [f for f in FACTS if matches(pattern, f["name"], f["aliases"])]


def live_facts() -> list[dict[str, Any]]:
    """The same facts read from the registry (imports the zoo, and torch)."""
    from cnnlab.zoo import list_models, model_info

    out = []
    for name in list_models():
        info = model_info(name)
        out.append(
            {
                "name": info.name,
                "aliases": list(info.aliases),
                "params": info.params,
                "macs": info.macs,
                "input_size": list(info.input_size),
                "num_classes": info.num_classes,
                "paper": info.paper,
                "top5": info.top5,
            }
        )
    return out


def _write() -> None:
    import pprint
    from pathlib import Path

    path = Path(__file__)
    text = path.read_text(encoding="utf-8")
    head, _, _ = text.partition("FACTS: tuple[dict[str, Any], ...] = ")
    body = pprint.pformat(tuple(live_facts()), width=96, sort_dicts=False)
    tail = text[text.index("\n\n\ndef facts(") :]
    path.write_text(
        head + "FACTS: tuple[dict[str, Any], ...] = " + body + "  # fmt: skip" + tail,
        encoding="utf-8",
    )


if __name__ == "__main__":
    _write()
