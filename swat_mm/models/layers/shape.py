"""Shape arithmetic that exporters can follow."""

__all__ = ['ceil_to']


def ceil_to(size: int, multiple: int) -> int:
    """``size`` rounded up to a multiple of ``multiple``.

    Written with positive operands only, since ONNX divides integers
    rounding towards zero, and as a product, which ``torch.export`` then
    knows to be divisible by ``multiple``.
    """
    return (size + multiple - 1) // multiple * multiple
