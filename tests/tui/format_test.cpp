// Short numbers for a crowded screen.
#include "tui/format.h"

#include <gtest/gtest.h>

#include <clocale>

namespace cutpilot::tui {
namespace {

TEST(Format, Clock) {
  EXPECT_EQ(clock_text(0), "0:00");
  EXPECT_EQ(clock_text(7.9), "0:07");
  EXPECT_EQ(clock_text(754), "12:34");
  EXPECT_EQ(clock_text(3723), "1:02:03");
  EXPECT_EQ(clock_text(-5), "0:00");
}

TEST(Format, Bytes) {
  EXPECT_EQ(bytes_text(0), "0 B");
  EXPECT_EQ(bytes_text(999), "999 B");
  EXPECT_EQ(bytes_text(1536), "1.5 KiB");
  EXPECT_EQ(bytes_text(34ull << 20), "34 MiB");
  EXPECT_EQ(bytes_text((2ull << 30) - 1), "1.9 GiB");  // rounded down, never up
  EXPECT_EQ(rate_text(0), "-");
  EXPECT_EQ(rate_text(12 << 20), "12 MiB/s");
}

TEST(Format, BarIsFullOnlyAtTheEnd) {
  EXPECT_EQ(bar_text(0, 12, false), "[..........]");
  EXPECT_EQ(bar_text(0.5, 12, false), "[#####.....]");
  EXPECT_EQ(bar_text(0.999, 12, false), "[#########.]");
  EXPECT_EQ(bar_text(1.0, 12, false), "[##########]");
  EXPECT_EQ(bar_text(7.0, 12, false), "[##########]");
  EXPECT_EQ(bar_text(-1, 5, false), "[...]");
  EXPECT_EQ(bar_text(0.5, 6, true), "[\u2588\u2588\u00b7\u00b7]");
}

TEST(Format, FitCutsOnCharactersAndMarksTheCut) {
  EXPECT_EQ(fit("hello", 5), "hello");
  EXPECT_EQ(fit("hello world", 5), "hell~");
  EXPECT_EQ(fit("\u00e9t\u00e9 \u00e9t\u00e9", 4), "\u00e9t\u00e9~");
  EXPECT_EQ(text_width("\u00e9t\u00e9"), 3);
  EXPECT_EQ(fit("abc", 0), "");
}

TEST(Format, PrintableDefusesControlBytes) {
  EXPECT_EQ(printable("a\x1b[2Jb\r\n"), "a?[2Jb??");
  EXPECT_EQ(printable("tab\there"), "tab  here");
  EXPECT_EQ(printable("caf\u00e9"), "caf\u00e9");
  EXPECT_EQ(printable("\xc2\x9b"
                      "31m"),
            "?31m");                         // C1 CSI in UTF-8
  EXPECT_EQ(printable("a\xff\xc3"), "a??");  // malformed
  EXPECT_EQ(printable("\xe2\x82"), "??");    // cut short
}

TEST(Format, WideCharactersTakeTwoCells) {
  const char* old = std::setlocale(LC_CTYPE, "C.UTF-8");
  if (!old) GTEST_SKIP() << "no C.UTF-8 locale";
  EXPECT_EQ(text_width("\u4e2d\u6587"), 4);
  EXPECT_EQ(fit("\u4e2d\u6587\u4e2d", 4), "\u4e2d~");
  std::setlocale(LC_CTYPE, "C");
}

}  // namespace
}  // namespace cutpilot::tui
