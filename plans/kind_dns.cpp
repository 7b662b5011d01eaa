// The dns action kind: an RFC 2136 update of one name's records, signed with TSIG.
#include <arpa/inet.h>

#include "plans/duration.h"
#include "plans/kinds.h"

namespace cutpilot::plans {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kRecordTypes[] = {"A", "AAAA"};
constexpr std::string_view kAlgorithms[] = {"hmac-sha256", "hmac-sha512"};
constexpr std::string_view kRequired[] = {"update", "zone", "server", "address", "key", "key_env"};

// A dns table as read, with where `address` was written.
struct DnsRead : DnsAction {
  std::optional<SourcePos> address_pos;
};

template <std::string DnsAction::*Field>
void read_name(Reader& r, const Entry& e, DnsRead& x) {
  if (auto v = r.string(e)) x.*Field = std::move(*v);
}

constexpr FieldSpec<DnsRead> kDnsFields[] = {
    {"update", read_name<&DnsAction::name>},
    {"zone", read_name<&DnsAction::zone>},
    {"server",
     [](Reader& r, const Entry& e, DnsRead& x) {
       auto v = r.string(e);
       if (v && !valid_dns_server(*v))
         r.value_error(e,
                       "must be an IP address with an optional port (\"192.0.2.53\", "
                       "\"127.0.0.1:5353\"), not " +
                           quote(*v));
       else if (v)
         x.server = std::move(*v);
     }},
    {"address",
     [](Reader& r, const Entry& e, DnsRead& x) {
       if (auto v = r.strings(e, /*single=*/true, /*allow_empty=*/false)) x.addresses = *v;
       x.address_pos = r.source().pos_of(e.value);
     }},
    {"type",
     [](Reader& r, const Entry& e, DnsRead& x) {
       if (auto v = r.choice(e, kRecordTypes)) x.record_type = std::move(*v);
     }},
    {"ttl",
     [](Reader& r, const Entry& e, DnsRead& x) {
       auto v = r.duration(e);
       if (v && *v % std::chrono::seconds(1) != Millis(0))
         r.value_error(e, "must be a whole number of seconds (a TTL is)");
       else if (v)
         x.ttl = *v;
     }},
    {"key", read_name<&DnsAction::key_name>},
    {"key_env",
     [](Reader& r, const Entry& e, DnsRead& x) {
       if (auto v = read_env_name(r, e)) x.key_env = std::move(*v);
     }},
    {"algorithm",
     [](Reader& r, const Entry& e, DnsRead& x) {
       if (auto v = r.choice(e, kAlgorithms)) x.algorithm = std::move(*v);
     }},
};

// The name without its trailing dot, lower-cased, with a dot in front (for suffix tests).
std::string dotted(std::string name) {
  if (!name.empty() && name.back() == '.') name.pop_back();
  for (char& c : name)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return "." + name;
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& word : words)
    out += (out.empty() ? "" : " ") + word;
  return out;
}

}  // namespace

std::optional<Action> read_dns_action(ActionInput& input) {
  Reader& reader = input.reader;
  const size_t before = reader.diagnostics().size();
  DnsRead read;
  if (!read_action_table<DnsRead>(
          input, kDnsFields, read,
          "{ update = \"www.example.org\", zone = \"example.org\", server = \"192.0.2.53\", "
          "address = \"203.0.113.7\", key = \"NAME\", key_env = \"TSIG_SECRET\" }"))
    return std::nullopt;
  const SourcePos at = reader.source().pos_of(input.entry.value);
  for (const std::string_view key : kRequired)
    if (!input.entry.value.contains(std::string(key)))
      reader.error(at, input.section + " needs '" + std::string(key) + "'");
  if (!read.name.empty() && !read.zone.empty() && !dotted(read.name).ends_with(dotted(read.zone)))
    reader.error(
        at, input.section + ": " + quote(read.name) + " is not inside zone " + quote(read.zone));
  const int family = read.record_type == "A" ? AF_INET : AF_INET6;
  for (const std::string& address : read.addresses) {
    in6_addr bytes{};
    if (inet_pton(family, address.c_str(), &bytes) != 1)
      reader.error(*read.address_pos, "'address' in " + input.section + ": " + quote(address) +
                                          " is not an " + (family == AF_INET ? "IPv4" : "IPv6") +
                                          " address (type " + read.record_type + ")");
  }
  if (errors_since(reader, before)) return std::nullopt;
  DnsAction dns = read;
  return Action(std::move(dns));
}

Translation dns_job(const DnsAction& dns, const JobInput& input) {
  const std::optional<std::string> secret =
      input.context.secrets ? input.context.secrets(dns.key_env) : std::nullopt;
  if (!secret || secret->empty())
    return job_error(input, "environment variable " + quote(dns.key_env) +
                                " (key_env: the TSIG secret of key " + quote(dns.key_name) +
                                ") is not set");
  Json spec = {{"server", dns.server},       {"zone", dns.zone},
               {"name", dns.name},           {"record_type", dns.record_type},
               {"addresses", dns.addresses}, {"ttl_s", dns.ttl.count() / 1000},
               {"key_name", dns.key_name},   {"algorithm", dns.algorithm},
               {"secret", *secret}};
  Json redacted = spec;
  redacted["secret"] = "(hidden)";
  return {JobSpec{"dns", spec.dump(), redacted.dump()}, ""};
}

std::string describe_dns(const DnsAction& dns, const DescribeInput&) {
  return "update " + dns.name + " " + dns.record_type + " to " + joined(dns.addresses) + " (TTL " +
         format_duration(dns.ttl) + ") at " + dns.server + " (zone " + dns.zone +
         "), signed with key " + dns.key_name + " ($" + dns.key_env + ", " + dns.algorithm + ")";
}

}  // namespace cutpilot::plans
