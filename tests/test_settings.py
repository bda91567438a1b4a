"""Settings: one frozen value, checked once; every bound stated once and refused with a
message that names the parameter, the allowed values and what was given."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from colorquant.errors import InvalidParameterError
from colorquant.settings import (DEFAULT_COLORS, MAX_COLORS, QualityTarget, Settings, parse_quality,
                                 quality_to_psnr)


def test_defaults_are_complete_and_checked():
    settings = Settings()
    assert settings.n_colors == DEFAULT_COLORS and settings.method == "kmeans"
    assert settings.target is None and settings.format == "png" and settings.metrics == ()
    # a method's options are always all present, defaults filled in
    assert Settings(method="gmm").options == {"covariance_type": "spherical"}
    # with a target, n_colors is the upper bound of the search
    assert Settings(target=QualityTarget("psnr", 30)).n_colors == MAX_COLORS


def test_settings_are_frozen_hashable_and_picklable():
    settings = Settings(n_colors=32, method="GMM", method_options=(("covariance_type", "diag"),))
    assert settings.method == "gmm"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.n_colors = 8
    assert hash(settings) == hash(Settings(n_colors=32, method="gmm", method_options=(("covariance_type", "diag"),)))
    assert pickle.loads(pickle.dumps(settings)) == settings


def test_changes_are_checked_again():
    settings = Settings()
    assert settings.with_changes(n_colors=64).n_colors == 64
    with pytest.raises(InvalidParameterError, match="n_colors must be an int in \\[2, 256\\]; got 300"):
        settings.with_changes(n_colors=300)


@pytest.mark.parametrize("changes, fragment", [
    ({"n_colors": 1}, "n_colors must be an int in [2, 256]; got 1"),
    ({"n_colors": 16.0}, "got 16.0"),
    ({"method": "dbscan"}, "method must be one of kmeans, minibatch, gmm; got 'dbscan'"),
    ({"method": "gmm", "method_options": (("covariance_type", "round"),)}, "covariance_type must be one of"),
    ({"method_options": (("covariance_type", "full"),)}, "unexpected options for method 'kmeans'"),
    ({"random_state": -1}, "random_state must be an int in [0, 4294967295]"),
    ({"color_space": "hsv"}, "color_space must be one of mixed, rgb, oklab; got 'hsv'"),
    ({"dither": 1.5}, "dither must be a number in [0, 1]; got 1.5"),
    ({"dither": True}, "dither must be a number"),
    ({"format": "bmp"}, "format must be one of png, gif, webp, jpeg; got 'bmp'"),
    ({"max_pixels": 0}, "max_pixels must be an int >= 1; got 0"),
    ({"max_pixels": "abc"}, "max_pixels must be an int >= 1; got 'abc'"),
    ({"metrics": ("psnr", "sharpness")}, "metrics must be one of"),
    ({"target": QualityTarget("psnr", 30), "format": "jpeg"}, "lossless output format"),
    ({"target": QualityTarget("psnr", 30), "min_colors": 40, "n_colors": 20}, "min_colors (40) must not exceed"),
    ({"fallback": QualityTarget("psnr", 30)}, "a fallback needs a target"),
    ({"target": QualityTarget("psnr", 30), "fallback": QualityTarget("mse", 30)}, "of the target's metric"),
])
def test_bad_settings_are_refused_by_name(changes, fragment):
    with pytest.raises(InvalidParameterError) as caught:
        Settings(**changes)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("metric, value, fragment", [
    ("psnr", 0, "target_psnr must be in (0, 100]"),
    ("psnr", float("nan"), "must be a finite number"),
    ("ssim", 1.01, "target_ssim must be in (0, 1]"),
    ("mse", -1, "target_mse must be in [0, 65025]"),
    ("ciede2000", 3, "target metric must be one of mse, psnr, ssim"),
])
def test_bad_targets_are_refused(metric, value, fragment):
    with pytest.raises(InvalidParameterError) as caught:
        QualityTarget(metric, value)
    assert fragment in str(caught.value)


def test_targets_know_their_direction():
    assert QualityTarget("psnr", 30).met_by(30.0) and not QualityTarget("psnr", 30).met_by(29.9)
    assert QualityTarget("mse", 30).met_by(30.0) and not QualityTarget("mse", 30).met_by(30.1)
    assert QualityTarget("psnr", 35).describe() == "PSNR >= 35 dB"
    assert QualityTarget("mse", 2).describe() == "MSE <= 2"


def test_from_keywords_reads_targets_quality_and_method_options():
    settings = Settings.from_keywords(target_ssim=0.9, method="gmm", covariance_type="tied")
    assert settings.target == QualityTarget("ssim", 0.9) and settings.options == {"covariance_type": "tied"}
    quality = Settings.from_keywords(quality="60-80")
    assert quality.target == QualityTarget("psnr", 40.0) and quality.fallback == QualityTarget("psnr", 35.0)
    with pytest.raises(InvalidParameterError, match="give one quality target, not target_psnr and quality"):
        Settings.from_keywords(target_psnr=30, quality=(10, 20))


@pytest.mark.parametrize("text, expected", [("60-80", (60.0, 80.0)), ("80", (0.0, 80.0)),
                                            ("60-", (60.0, 100.0)), ("-70", (0.0, 70.0)),
                                            ((10, 20), (10.0, 20.0))])
def test_quality_ranges_as_pngquant_reads_them(text, expected):
    assert parse_quality(text) == expected


@pytest.mark.parametrize("text", ["80-60", "abc", "-5-10", "0-101", (1, 2, 3), (True, 5)])
def test_bad_quality_ranges(text):
    with pytest.raises(InvalidParameterError, match="quality must be"):
        parse_quality(text)


def test_quality_scale_maps_to_psnr():
    assert quality_to_psnr(60) == 35.0 and quality_to_psnr(0) == 20.0 and quality_to_psnr(100) == 45.0


def test_output_fingerprint_holds_what_decides_the_bytes():
    base = Settings().output_fingerprint()
    assert Settings(metrics=("ciede2000",)).output_fingerprint() == base  # figures: same bytes
    assert Settings(n_colors=17).output_fingerprint() != base
    assert Settings(dither=0.5).output_fingerprint() != base


@pytest.mark.parametrize("speed", [0, 12, 4.0, "4", None])
def test_speed_is_pngquants_one_to_eleven(speed):
    with pytest.raises(InvalidParameterError, match="speed must be an int in \\[1, 11\\]"):
        Settings(speed=speed)
    assert Settings(speed=11).speed == 11
    assert Settings(speed=1).output_fingerprint() != Settings().output_fingerprint()
