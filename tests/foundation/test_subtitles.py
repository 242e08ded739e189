"""Shared subtitle parsing: SRT, WebVTT, the SFD subtitles CSV, timestamps and line-numbered errors."""

import pytest

from storylab.errors import StorylabError
from storylab.subtitles import (Subtitle, format_timestamp, parse_timestamp, read_sfd_csv, read_srt, read_subtitle_file,
                                read_vtt, write_srt)


@pytest.mark.parametrize("text, seconds", [
    ("01:02:03,500", 3723.5),   # SRT
    ("00:01:02,5", 62.5),       # short fraction
    ("01:02.250", 62.25),       # WebVTT without hours
    ("01:02:03.250", 3723.25),  # WebVTT with hours
    ("2:03", 123.0),            # no fraction
    ("7.25", 7.25),             # plain seconds (SFD CSV)
    (" 12 ", 12.0),
])
def test_parse_timestamp_formats(text, seconds):
    assert parse_timestamp(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "00:61:00,000", "00:00:0x,500", "-1", "nan", "", "1:2:3:4"])
def test_parse_timestamp_refuses_broken_values_naming_file_and_line(text):
    with pytest.raises(StorylabError, match=r"broken timestamp .* in subs\.srt line 7$"):
        parse_timestamp(text, "subs.srt", 7)


def test_write_srt_round_trip(tmp_path):
    subs = [Subtitle(1.0, 2.5, "Hello there."), Subtitle(3.25, 4.0, "Why is the fridge full of socks?"),
            Subtitle(3723.125, 3725.0, "An hour later.")]
    path = write_srt(tmp_path / "a.srt", subs)
    assert path.read_text().splitlines()[:3] == ["1", "00:00:01,000 --> 00:00:02,500", "Hello there."]
    assert read_srt(path) == subs
    assert format_timestamp(3723.125) == "01:02:03,125"


def test_srt_tags_multiline_cues_and_order(tmp_path):
    path = tmp_path / "film.srt"
    path.write_text("\ufeff2\r\n00:01:04,000 --> 00:01:05,000\r\n{\\an8}Bye\r\n\r\n"
                    "1\r\n00:00:01,000 --> 00:00:03,500\r\n<i>Hello</i> there.\r\nSecond line\r\n\r\n"
                    "3\r\n00:02:00,000 --> 00:02:01,000\r\n\r\n")
    assert read_srt(path) == [Subtitle(1.0, 3.5, "Hello there. Second line"), Subtitle(64.0, 65.0, "Bye")]
    assert read_subtitle_file(path) == read_srt(path)


def test_vtt_header_settings_voices_and_entities(tmp_path):
    path = tmp_path / "a.vtt"
    path.write_text("WEBVTT - a test\n\nNOTE written by hand\n\nintro\n00:01.000 --> 00:02.500 align:start\n"
                    "<v Bob>Salt &amp; pepper.\n\n01:02:03.250 --> 01:02:04.000\nLate line\n")
    assert read_vtt(path) == [Subtitle(1.0, 2.5, "Salt & pepper."), Subtitle(3723.25, 3724.0, "Late line")]
    (tmp_path / "b.vtt").write_text("1\n00:00:01,000 --> 00:00:02,000\nHi\n")
    with pytest.raises(StorylabError, match=r"b\.vtt: not a WebVTT file"):
        read_vtt(tmp_path / "b.vtt")


def test_sfd_csv_lines_per_video_sorted_with_seconds_and_clock_times(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('text,start,end,speaker,video_id\n"later, with a comma",00:01:02.5,64,SPEAKER_01,film\n'
                    "first,1,2.25,SPEAKER_00,film\nYo,2,3,SPEAKER_01,ep2\n")
    subs = read_sfd_csv(path)
    assert subs == {"film": [Subtitle(1.0, 2.25, "first", "SPEAKER_00"),
                             Subtitle(62.5, 64.0, "later, with a comma", "SPEAKER_01")],
                    "ep2": [Subtitle(2.0, 3.0, "Yo", "SPEAKER_01")]}


@pytest.mark.parametrize("body, message", [
    ("Hi,1,2,S,film\nHo,abc,2,S,film\n", r"broken timestamp 'abc' in .*bad\.csv line 3$"),
    ("x,5,2,S,film\n", r"ends before it starts in .*bad\.csv line 2 \(end 2\.0 is before start 5\.0\)"),
    ("x,1,2,S, \n", r"empty video_id in .*bad\.csv line 2"),
])
def test_sfd_csv_errors_name_file_and_line(tmp_path, body, message):
    path = tmp_path / "bad.csv"
    path.write_text("text,start,end,speaker,video_id\n" + body)
    with pytest.raises(StorylabError, match=message):
        read_sfd_csv(path)


def test_sfd_csv_missing_columns_or_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,start,video_id\nx,1,film\n")
    with pytest.raises(StorylabError, match=r"bad\.csv lacks column\(s\): end$"):
        read_sfd_csv(path)
    with pytest.raises(StorylabError, match="subtitle file not found: .*nope.csv"):
        read_sfd_csv(tmp_path / "nope.csv")


def test_broken_srt_is_reported_with_file_and_line(tmp_path):
    (tmp_path / "bad.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nHi\n\n2\n00:00:03,000 --> 00:00:0x,500\nHo\n")
    with pytest.raises(StorylabError, match=r"broken timestamp '00:00:0x,500' in .*bad\.srt line 6$"):
        read_srt(tmp_path / "bad.srt")
    (tmp_path / "back.srt").write_text("1\n00:00:05,000 --> 00:00:01,000\nHi\n")
    with pytest.raises(StorylabError, match=r"ends before it starts in .*back\.srt line 2 \(end 1\.0 is before start 5\.0\)"):
        read_srt(tmp_path / "back.srt")
    (tmp_path / "prose.srt").write_text("just some text\n")
    with pytest.raises(StorylabError, match=r"prose\.srt: no subtitle cues found"):
        read_srt(tmp_path / "prose.srt")
    (tmp_path / "empty.srt").write_text("")
    assert read_srt(tmp_path / "empty.srt") == []
    with pytest.raises(StorylabError, match="got a folder"):
        read_srt(tmp_path)
    with pytest.raises(StorylabError, match=r"unknown subtitle format '\.txt'"):
        read_subtitle_file(tmp_path / "a.txt")
