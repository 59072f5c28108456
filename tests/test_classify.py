import torch

from gan.classify import SmallCNN, TrainingSet, accuracy, predict, train_classifier

CPU = torch.device("cpu")


def two_colours(n: int, seed: int) -> TrainingSet:
    """Dark images are class 0, bright ones class 1."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = (labels.view(-1, 1, 1, 1) * 150 + torch.randint(0, 100, (n, 3, 16, 16), generator=g)).to(torch.uint8)
    return TrainingSet(images, labels)


def test_the_classifier_learns_an_easy_task_and_repeats_from_its_seed():
    train, test = two_colours(20, 0), two_colours(40, 1)
    model = train_classifier(train, 2, steps=30, batch_size=8, seed=0, device=CPU)
    overall, per_class = accuracy(predict(model, test.images, CPU), test.labels, 2)
    assert overall > 0.9 and len(per_class) == 2
    again = train_classifier(train, 2, steps=30, batch_size=8, seed=0, device=CPU)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_batches_are_always_full_even_from_fewer_images(monkeypatch):
    sizes = []
    train = two_colours(5, 0)
    train_classifier(train, 2, steps=3, batch_size=8, seed=0, device=CPU, augment=lambda b: sizes.append(len(b)) or b)
    assert sizes == [8, 8, 8]


def test_any_resolution_and_one_channel():
    assert SmallCNN(1, 3)(torch.zeros(2, 1, 64, 64)).shape == (2, 3)


def test_accuracy_per_class_skips_absent_classes():
    overall, per_class = accuracy(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 3)
    assert overall == 2 / 3 and per_class == [0.5, 1.0, None]
