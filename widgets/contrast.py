"""WCAG 2 contrast, and a foreground nudged until it reads on its background.

Themes are the operator's choice (any Textual theme), and a colour that reads on the list's background may not on
the cursor's: styles go through `readable` so every piece of text keeps at least `AA` (4.5:1) whatever the theme.
"""

from __future__ import annotations

from typing import Final

from rich.color import Color as RichColor
from rich.style import Style
from textual.color import Color

AA: Final = 4.5  # WCAG 2 level AA, normal text
_WHITE: Final = Color(255, 255, 255)
_BLACK: Final = Color(0, 0, 0)


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(color: RichColor) -> float:
    """WCAG relative luminance, 0 (black) to 1 (white)."""
    red, green, blue = color.get_truecolor()
    return 0.2126 * _channel(red) + 0.7152 * _channel(green) + 0.0722 * _channel(blue)


def contrast(foreground: RichColor, background: RichColor) -> float:
    """The WCAG contrast ratio of two colours, 1 to 21."""
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def readable(style: Style, minimum: float = AA) -> Style:
    """`style` with its foreground moved towards white or black (whichever the background allows more of) just far
    enough to reach `minimum` against its background; unchanged when it already does or a colour is unknown."""
    if style.color is None or style.bgcolor is None or style.color.is_default or style.bgcolor.is_default:
        return style
    foreground, background = style.color, style.bgcolor
    if style.reverse:
        foreground, background = background, foreground
    if contrast(foreground, background) >= minimum:
        return style
    start = Color.from_rich_color(foreground)
    target = _WHITE if contrast(_WHITE.rich_color, background) >= contrast(_BLACK.rich_color, background) else _BLACK
    nudged = target.rich_color
    for step in range(1, 21):  # 5 % at a time: keeps as much of the hue as the background allows
        candidate = start.blend(target, step / 20).rich_color
        if contrast(candidate, background) >= minimum:
            nudged = candidate
            break
    return style + (Style(bgcolor=nudged) if style.reverse else Style(color=nudged))
