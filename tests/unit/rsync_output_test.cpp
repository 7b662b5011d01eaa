// Parsers for rsync's output, fed with lines captured from rsync 3.5.0 on this machine.
#include "agents/rsync_output.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace cutpilot::agent {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// ---- parse_progress2 ----------------------------------------------------------------------

TEST(RsyncProgressTest, FirstLineHasNoFileCounts) {
  auto p = parse_progress2("          32768   0%    0.00kB/s    0:00:00  ");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->bytes, 32768u);
  EXPECT_EQ(p->percent, 0);
  EXPECT_EQ(p->rate, 0u);
  EXPECT_FALSE(p->has_files);
  EXPECT_EQ(p->files_total, 0u);
}

TEST(RsyncProgressTest, LineWithFileCounts) {
  auto p = parse_progress2("         100000   0%   64.12MB/s    0:00:00 (xfr#1, to-chk=300/304)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->bytes, 100000u);
  EXPECT_EQ(p->percent, 0);
  EXPECT_EQ(p->rate, 64 * kMiB + (12 * kMiB + 50) / 100);  // 64.12 MiB/s, rounded
  EXPECT_TRUE(p->has_files);
  EXPECT_EQ(p->files_total, 304u);
  EXPECT_EQ(p->files_done, 4u);
}

TEST(RsyncProgressTest, PaddedLineAfterALongerOne) {
  // progress2 pads with spaces when "to-chk=100/304" turns into "to-chk=99/304".
  auto p = parse_progress2("       20200000  67%  601.03MB/s    0:00:00 (xfr#202, to-chk=99/304) ");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->bytes, 20200000u);
  EXPECT_EQ(p->percent, 67);
  EXPECT_EQ(p->files_done, 205u);
}

TEST(RsyncProgressTest, FinalLineOfATreeWithASymlinkStaysAt99Percent) {
  auto p = parse_progress2("       30000000  99%  571.58MB/s    0:00:00 (xfr#300, to-chk=0/304)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->percent, 99);
  EXPECT_EQ(p->files_done, 304u);
  EXPECT_EQ(p->files_total, 304u);
  EXPECT_EQ(p->rate, 571 * kMiB + (58 * kMiB + 50) / 100);
}

TEST(RsyncProgressTest, EmptyTransferUnknownTimeLeftAndTooManyToCheck) {
  auto p = parse_progress2("              0 100%    0.00kB/s    0:00:00 (xfr#0, to-chk=0/1)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->bytes, 0u);
  EXPECT_EQ(p->percent, 100);
  EXPECT_EQ(p->files_done, 1u);
  auto unknown = parse_progress2("   1000000  50%    1.00kB/s  ??:??:??  ");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->bytes, 1000000u);
  EXPECT_TRUE(parse_progress2("1 1% 1.00kB/s 9999:59:59"));
  auto odd = parse_progress2("1 0% 1.00kB/s 0:00:00 (xfr#1, to-chk=9/3)");
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->files_done, 0u);
  EXPECT_EQ(odd->files_total, 3u);
}

TEST(RsyncProgressTest, CommasOfHumanReadableLevelOne) {
  auto p = parse_progress2("     30,000,000  99%  250.69MB/s    0:00:00 (xfr#300, to-chk=0/304)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->bytes, 30000000u);
  auto q = parse_progress2(
      "  1,234,567,890  10%    1.00GB/s    0:00:09 (xfr#1,234, to-chk=1,000/2,345)");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->bytes, 1234567890u);
  EXPECT_EQ(q->files_total, 2345u);
  EXPECT_EQ(q->files_done, 1345u);
}

TEST(RsyncProgressTest, IncrementalRecursionAndOldFormat) {
  auto ir =
      parse_progress2("        5000000   3%    4.00MB/s    0:01:10 (xfr#5, ir-chk=1000/1205)");
  ASSERT_TRUE(ir);
  EXPECT_EQ(ir->files_total, 1205u);
  EXPECT_EQ(ir->files_done, 205u);
  // rsync 3.0 wrote "xfer#" and "to-check=".
  auto old = parse_progress2("      200000 100%  159.48MB/s    0:00:00 (xfer#2, to-check=0/2)");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->files_done, 2u);
}

TEST(RsyncProgressTest, RateUnitsAre1024Based) {
  auto rate = [](const char* text) {
    auto p = parse_progress2(std::string("1 0% ") + text + " 0:00:00");
    return p ? p->rate : UINT64_MAX;
  };
  EXPECT_EQ(rate("12.00B/s"), 12u);
  EXPECT_EQ(rate("1.50kB/s"), 1536u);
  EXPECT_EQ(rate("1.50KB/s"), 1536u);
  EXPECT_EQ(rate("2.00MB/s"), 2 * kMiB);
  EXPECT_EQ(rate("1.23GB/s"), 1320702444u);  // 1.23 * 2^30 = 1320702443.52
  EXPECT_EQ(rate("2048.00GB/s"), uint64_t{2} << 40);
  EXPECT_EQ(rate("3.00TB/s"), uint64_t{3} << 40);
  EXPECT_EQ(rate("64,12MB/s"), 64 * kMiB + (12 * kMiB + 50) / 100);  // a decimal comma
  EXPECT_EQ(rate("7kB/s"), 7168u);
  EXPECT_EQ(rate("1.5PB/s"), UINT64_MAX);
  EXPECT_EQ(rate("1.5"), UINT64_MAX);
  EXPECT_EQ(rate("MB/s"), UINT64_MAX);
  EXPECT_EQ(rate(".5MB/s"), UINT64_MAX);
  EXPECT_EQ(rate("5.MB/s"), UINT64_MAX);
  EXPECT_EQ(rate("1.2.3MB/s"), UINT64_MAX);
  EXPECT_EQ(rate("99999999.00TB/s"), UINT64_MAX);  // does not fit in 64 bits
}

TEST(RsyncProgressTest, HugeNumbers) {
  auto p =
      parse_progress2("18446744073709551615 100% 1.00kB/s 0:00:00 (xfr#1, to-chk=0/4294967296)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->bytes, UINT64_MAX);
  EXPECT_EQ(p->files_total, 4294967296u);
  EXPECT_FALSE(parse_progress2("18446744073709551616 100% 1.00kB/s 0:00:00"));
  EXPECT_FALSE(parse_progress2("1 99999999999% 1.00kB/s 0:00:00"));
}

TEST(RsyncProgressTest, RejectsEverythingElse) {
  for (const char* line : {
           "",
           "sending incremental file list",
           "a/f1",
           "Number of files: 304 (reg: 300, dir: 3, link: 1)",
           "sent 30024960 bytes  received 5732 bytes  60061384.00 bytes/sec",
           "rsync error: some files/attrs were not transferred (code 23) at main.c(1394)",
           "100000 0%",                                        // fields missing
           "100000 0% 64.12MB/s",                              // no time left
           "100000 0% 64.12MB/s 0:00",                         // short time left
           "100000 abc% 64.12MB/s 0:00:00",                    // percent
           "100000 1,0% 64.12MB/s 0:00:00",                    // percent
           "-100000 0% 64.12MB/s 0:00:00",                     // sign
           ",100 0% 64.12MB/s 0:00:00",                        // comma first
           "100, 0% 64.12MB/s 0:00:00",                        // comma last
           "100000 0% 64.12XB/s 0:00:00",                      // unit
           "100000 0% 64.12MB/s 0:00:00 junk",                 // trailing text
           "100000 0% 64.12MB/s 0:00:00 (xfr#1, to-chk=1)",    // no total
           "100000 0% 64.12MB/s 0:00:00 (xfr#1, to-chk=1/2",   // unclosed
           "100000 0% 64.12MB/s 0:00:00 (xfr#1, done=1/2)",    // other counter
           "100000 0% 64.12MB/s 0:00:00 (xfr#, to-chk=1/2)",   // empty xfr
           "100000 0% 64.12MB/s 0:00:00 (xfr#1,to-chk=1/2)",   // no space
           "100000 0% 64.12MB/s 0:00:00 (xfr#1, to-chk=a/2)",  // not a number
       }) {
    EXPECT_FALSE(parse_progress2(line)) << line;
  }
}

TEST(RsyncProgressTest, CapturedStreamSplitOnCarriageReturnsAndNewline) {
  // The start and end of a real stdout, as the caller reads it: every line starts with '\r'.
  const std::string out =
      "\r          32768   0%    0.00kB/s    0:00:00  "
      "\r         100000   0%   64.12MB/s    0:00:00 (xfr#1, to-chk=300/304)"
      "\r       30000000  99%  571.58MB/s    0:00:00 (xfr#300, to-chk=0/304)\n"
      "\nNumber of files: 304 (reg: 300, dir: 3, link: 1)\n";
  std::vector<RsyncProgress> seen;
  for (size_t start = 0, end = 0; end != std::string::npos; start = end + 1) {
    end = out.find_first_of("\r\n", start);
    auto p = parse_progress2(std::string_view(out).substr(start, end - start));
    if (p) seen.push_back(*p);
  }
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_FALSE(seen[0].has_files);
  EXPECT_EQ(seen[2].bytes, 30000000u);
}

// ---- RsyncStatsParser ---------------------------------------------------------------------

RsyncStats feed(const std::vector<std::string>& lines) {
  RsyncStatsParser parser;
  for (const auto& line : lines)
    parser.feed_line(line);
  return parser.stats();
}

TEST(RsyncStatsTest, RealBlockWithoutHumanReadable) {
  auto stats = feed({
      "",
      "Number of files: 304 (reg: 300, dir: 3, link: 1)",
      "Number of created files: 303 (reg: 300, dir: 2, link: 1)",
      "Number of deleted files: 0",
      "Number of regular files transferred: 300",
      "Total file size: 30000006 bytes",
      "Total transferred file size: 30000000 bytes",
      "Literal data: 30000000 bytes",
      "File list generation time: 0.001 seconds",
      "Total bytes sent: 30024960",
      "Total bytes received: 5732",
      "",
      "sent 30024960 bytes  received 5732 bytes  60061384.00 bytes/sec",
      "total size is 30000006  speedup is 1.00",
  });
  EXPECT_EQ(stats.files, 304u);
  EXPECT_EQ(stats.regular_files_transferred, 300u);
  EXPECT_EQ(stats.total_size, 30000006u);
  EXPECT_EQ(stats.transferred_size, 30000000u);
  EXPECT_EQ(stats.deleted, 0u);
  EXPECT_TRUE(stats.complete);
}

TEST(RsyncStatsTest, RealBlockWithCommasAndDeletions) {
  auto stats = feed({
      "Number of files: 304 (reg: 300, dir: 3, link: 1)",
      "Number of created files: 303 (reg: 300, dir: 2, link: 1)",
      "Number of deleted files: 3 (reg: 2, dir: 1)",
      "Number of regular files transferred: 300",
      "Total file size: 30,000,006 bytes",
      "Total transferred file size: 30,000,000 bytes",
      "Total bytes sent: 30,024,982",
  });
  EXPECT_EQ(stats.files, 304u);
  EXPECT_EQ(stats.deleted, 3u);
  EXPECT_EQ(stats.total_size, 30000006u);
  EXPECT_EQ(stats.transferred_size, 30000000u);
  EXPECT_TRUE(stats.complete);
}

TEST(RsyncStatsTest, CompleteOnlyOnceTransferredSizeWasSeen) {
  RsyncStatsParser parser;
  parser.feed_line("Number of files: 1 (dir: 1)");
  parser.feed_line("Total file size: 0 bytes");
  EXPECT_FALSE(parser.stats().complete);
  EXPECT_EQ(parser.stats().files, 1u);
  parser.feed_line("Total transferred file size: 0 bytes");
  EXPECT_TRUE(parser.stats().complete);
}

TEST(RsyncStatsTest, IgnoresOtherLinesAndBadValues) {
  RsyncStatsParser parser;
  parser.feed_line("Number of files: 7");
  for (const char* line : {"Number of files: lots", "Number of files:", "number of files: 9",
                           " Number of files: 9", "Number of created files: 9",
                           "Total bytes sent: 9", "a/Number of files: 9", "Total file size: x"}) {
    parser.feed_line(line);
  }
  EXPECT_EQ(parser.stats().files, 7u);
  EXPECT_EQ(parser.stats().total_size, 0u);
  EXPECT_FALSE(parser.stats().complete);
}

TEST(RsyncStatsTest, LaterValueReplacesEarlierAndHugeValues) {
  auto stats =
      feed({"Total file size: 5 bytes", "Total file size: 18,446,744,073,709,551,615 bytes",
            "Total transferred file size: 18446744073709551616 bytes"});
  EXPECT_EQ(stats.total_size, UINT64_MAX);
  EXPECT_EQ(stats.transferred_size, 0u);  // too big: left as it was
  EXPECT_TRUE(stats.complete);
}

// ---- unescape_rsync_name -------------------------------------------------------------------

TEST(RsyncNameTest, UnescapeLeavesIncompleteEscapesAlone) {
  EXPECT_EQ(unescape_rsync_name("a\\#0"), "a\\#0");
  EXPECT_EQ(unescape_rsync_name("a\\#01"), "a\\#01");
  EXPECT_EQ(unescape_rsync_name("a\\#012"), "a\n");
  EXPECT_EQ(unescape_rsync_name("\\#400"), "\\#400");  // above 0377
  EXPECT_EQ(unescape_rsync_name("\\#08a"), "\\#08a");
  EXPECT_EQ(unescape_rsync_name("\\\\#012"), "\\\n");
  EXPECT_EQ(unescape_rsync_name("\\#000"), std::string(1, '\0'));
  EXPECT_EQ(unescape_rsync_name(""), "");
}

// ---- failed_file_of -----------------------------------------------------------------------

std::string failed(std::string_view line) {
  auto file = failed_file_of(line);
  return file ? *file : "<nullopt>";
}

TEST(RsyncFailedFileTest, AListedFileTheSenderNoLongerFindsIsMissingNotAnError) {
  // rsync 3.2.7 copying a --files-from name that was renamed away after the listing (seen in
  // scenario 002: the core writes .att-N, then renames it): exit 23, not 24.
  EXPECT_TRUE(
      names_a_missing_file("rsync: [sender] link_stat \"/tmp/cp/data/.att-249\" failed: "
                           "No such file or directory (2)"));
  EXPECT_TRUE(
      names_a_missing_file("rsync: link_stat \"/x\" failed: No such file or directory (2)"));
  EXPECT_FALSE(
      names_a_missing_file("rsync: [sender] link_stat \"/x\" failed: Permission denied (13)"));
  EXPECT_FALSE(
      names_a_missing_file("rsync: [sender] send_files failed to open \"/x\": "
                           "No such file or directory (2)"));
  EXPECT_FALSE(
      names_a_missing_file("rsync error: some files/attrs were not transferred (see "
                           "previous errors) (code 23) at main.c(1956) [generator=3.5.0]"));
}

TEST(RsyncFailedFileTest, RealExit24And23Lines) {
  EXPECT_EQ(failed("file has vanished: \"/tmp/rs/van/src/f6\""), "/tmp/rs/van/src/f6");
  EXPECT_EQ(failed("file has vanished: \"/data/x\" (in backup)"), "/data/x");
  EXPECT_EQ(failed("rsync: [sender] file has vanished: \"/a b\""), "/a b");
  EXPECT_EQ(failed("rsync: [sender] send_files failed to open \"/tmp/rs/err/src/secret\": "
                   "Permission denied (13)"),
            "/tmp/rs/err/src/secret");
  EXPECT_EQ(failed("rsync: [sender] opendir \"/tmp/rs/err/src/locked\" failed: "
                   "Permission denied (13)"),
            "/tmp/rs/err/src/locked");
  EXPECT_EQ(failed("rsync: [generator] recv_generator: mkdir \"/tmp/rs/err/rodst/a\" failed: "
                   "Permission denied (13)"),
            "/tmp/rs/err/rodst/a");
  EXPECT_EQ(failed("rsync: [generator] failed to set times on \"/tmp/rs/err/rodst/.\": "
                   "Operation not permitted (1)"),
            "/tmp/rs/err/rodst/.");
  EXPECT_EQ(failed("rsync: [sender] link_stat \"/tmp/rs/nonexist\" failed: "
                   "No such file or directory (2)"),
            "/tmp/rs/nonexist");
  EXPECT_EQ(failed("rsync: [generator] symlink \"/tmp/rs/err/rodst/link\" -> \"target\" failed: "
                   "Permission denied (13)"),
            "/tmp/rs/err/rodst/link");
  // Before 3.2 there was no "[role]".
  EXPECT_EQ(failed("rsync: send_files failed to open \"/x\": Permission denied (13)"), "/x");
}

TEST(RsyncFailedFileTest, TemporaryNameMapsBackToTheFile) {
  EXPECT_EQ(failed("rsync: [receiver] mkstemp \"/tmp/rs/err/rodst/.f1.odZBbQ\" failed: "
                   "Permission denied (13)"),
            "/tmp/rs/err/rodst/f1");
  EXPECT_EQ(failed("rsync: [receiver] mkstemp \"/d/.a.b.c.XXXXXX\" failed: x (1)"), "/d/a.b.c");
  EXPECT_EQ(failed("rsync: [receiver] rename \"/d/.f.Ab12Cd\" -> \"f\": x (1)"), "/d/f");
  // Not a temporary name: kept as it is.
  EXPECT_EQ(failed("rsync: [receiver] mkstemp \"/d/.hidden\" failed: x (1)"), "/d/.hidden");
  EXPECT_EQ(failed("rsync: [receiver] mkstemp \"/d/.f.ab-def\" failed: x (1)"), "/d/.f.ab-def");
  // Elsewhere a dot name is just a dot name.
  EXPECT_EQ(failed("rsync: [sender] send_files failed to open \"/d/.f.odZBbQ\": x (1)"),
            "/d/.f.odZBbQ");
}

TEST(RsyncFailedFileTest, QuotesEscapesAndModules) {
  EXPECT_EQ(failed("rsync: [sender] send_files failed to open \"/tmp/rs/esc/src/q\"uote\": "
                   "Permission denied (13)"),
            "/tmp/rs/esc/src/q\"uote");
  EXPECT_EQ(failed("rsync: [sender] send_files failed to open \"/tmp/rs/esc/src/end\" failed\": "
                   "Permission denied (13)"),
            "/tmp/rs/esc/src/end\" failed");
  EXPECT_EQ(failed("rsync: [sender] send_files failed to open \"/tmp/rs/esc/src/nl\\#012x\": "
                   "Permission denied (13)"),
            "/tmp/rs/esc/src/nl\nx");
  EXPECT_EQ(failed("rsync: [sender] send_files failed to open \"/tmp/rs/esc/src/bad\\#377\": "
                   "Permission denied (13)"),
            "/tmp/rs/esc/src/bad\xff");
  EXPECT_EQ(failed("rsync: [sender] send_files failed to open \"/data/x\" (in mod): "
                   "Permission denied (13)"),
            "/data/x");
  EXPECT_EQ(failed("rsync: [receiver] rsync_xal_set: lsetxattr(\"/d/f\",\"user.a\") failed: "
                   "Operation not supported (95)"),
            "/d/f");
  EXPECT_EQ(failed("rsync: [receiver] failed to open \"/d/f\", continuing: "
                   "Permission denied (13)"),
            "/d/f");
}

TEST(RsyncFailedFileTest, UnquotedDeletionAndVerificationLines) {
  EXPECT_EQ(failed("rsync: [generator] delete_file: unlink(ro/x) failed: "
                   "Permission denied (13)"),
            "ro/x");
  EXPECT_EQ(failed("rsync: [generator] delete_file: rmdir(a (b)) failed: "
                   "Directory not empty (39)"),
            "a (b)");
  EXPECT_EQ(failed("could not make way for new directory: ro/x"), "ro/x");
  EXPECT_EQ(failed("could not make way for backup regular file: a: b"), "a: b");
  EXPECT_EQ(failed("ERROR: usr/lib/libperl.so.5.38.2 failed verification -- update discarded."),
            "usr/lib/libperl.so.5.38.2");
  // Retried: not a failure yet.
  EXPECT_EQ(failed("WARNING: a failed verification -- update discarded (will try again)."),
            "<nullopt>");
}

TEST(RsyncFailedFileTest, OtherLinesNameNoFile) {
  for (const char* line : {
           "",
           "rsync error: some files/attrs were not transferred (see previous errors) (code 23) "
           "at main.c(1394) [sender=3.5.0]",
           "rsync warning: some files vanished before they could be transferred (code 24) at "
           "main.c(1390) [sender=3.5.0]",
           "*** Skipping any contents from this failed directory ***",
           "rsync: connection unexpectedly closed (0 bytes received so far) [sender]",
           "cannot delete non-empty directory: d",
           "sent 30024960 bytes  received 5732 bytes  60061384.00 bytes/sec",
           "a/\"quoted\" failed",  // a file name on stdout, not an error
           "file has vanished: /no/quotes",
           "file has vanished: \"",
           "rsync: [sender] x \"\" failed",
           "rsync: [generator] delete_file: unlink() failed: x (1)",
           "rsync: [generator] delete_file: unlink(x)",
           "could not make way for new directory: ",
           "ERROR: failed verification -- update discarded.",
       }) {
    EXPECT_EQ(failed(line), "<nullopt>") << line;
  }
}

// ---- parse_rsync_version / has_trust_sender ------------------------------------------------

TEST(RsyncVersionTest, ReadsTheFirstLineOfVersionOutput) {
  EXPECT_EQ(parse_rsync_version("rsync  version 3.5.0  protocol version 32"),
            (std::array<int, 3>{3, 5, 0}));
  EXPECT_EQ(parse_rsync_version("rsync  version v3.2.7  protocol version 31"), std::nullopt);
  EXPECT_EQ(parse_rsync_version("rsync  version 3.2.7pre1  protocol version 31"),
            (std::array<int, 3>{3, 2, 7}));
  EXPECT_EQ(parse_rsync_version("rsync version 3.1  protocol version 31"),
            (std::array<int, 3>{3, 1, 0}));
  EXPECT_EQ(parse_rsync_version("openrsync: protocol version 29"), std::nullopt);
  EXPECT_EQ(parse_rsync_version(""), std::nullopt);
}

TEST(RsyncVersionTest, TrustSenderFrom325On) {
  EXPECT_FALSE(has_trust_sender({3, 2, 4}));
  EXPECT_FALSE(has_trust_sender({3, 1, 9}));
  EXPECT_TRUE(has_trust_sender({3, 2, 5}));
  EXPECT_TRUE(has_trust_sender({3, 5, 0}));
  EXPECT_TRUE(has_trust_sender({4, 0, 0}));
}

TEST(RsyncItemizeTest, DirectoryTimeAloneIsNotContent) {
  EXPECT_TRUE(directory_time_only(".d..t...... ./"));
  EXPECT_TRUE(directory_time_only(".d..T...... uploads/2024/"));
  // Anything more than the time, or about a file, is a difference.
  EXPECT_FALSE(directory_time_only(".d..tp..... ./"));
  EXPECT_FALSE(directory_time_only(".d...p..... ./"));
  EXPECT_FALSE(directory_time_only("cd+++++++++ new/"));
  EXPECT_FALSE(directory_time_only(".f..t...... a.txt"));
  EXPECT_FALSE(directory_time_only(">f.st...... a.txt"));
  EXPECT_FALSE(directory_time_only("*deleting   old.txt"));
  EXPECT_FALSE(directory_time_only(".d..t......"));
  EXPECT_FALSE(directory_time_only(""));
}

TEST(RsyncItemizeTest, DifferencesReadAsWords) {
  EXPECT_EQ(describe_itemized("*deleting   old.txt"), "only on the target: old.txt");
  EXPECT_EQ(describe_itemized("*deleting   dir with space/"),
            "only on the target: dir with space/");
  EXPECT_EQ(describe_itemized(">f+++++++++ new.txt"), "missing on the target: new.txt");
  EXPECT_EQ(describe_itemized("cd+++++++++ new/"), "missing on the target: new/");
  EXPECT_EQ(describe_itemized(">f.st...... a.txt"), "differs (size, time): a.txt");
  EXPECT_EQ(describe_itemized(">fc........ a.txt"), "differs (content): a.txt");
  EXPECT_EQ(describe_itemized(".f...po.... b"), "differs (permissions, owner): b");
  EXPECT_EQ(describe_itemized("not itemized"), "not itemized");
}

}  // namespace
}  // namespace cutpilot::agent
