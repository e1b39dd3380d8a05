#include "auth/ca_database.h"

#include <fcntl.h>
#include <openssl/x509v3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "auth/identity.h"

namespace pgmtls::auth::pki {
namespace {

// RFC 5280, section 5.3.1; 7 is not used.
constexpr std::array<std::string_view, 11> kReasonNames = {
    "unspecified",   "keyCompromise",        "cACompromise",    "affiliationChanged",
    "superseded",    "cessationOfOperation", "certificateHold", "",
    "removeFromCRL", "privilegeWithdrawn",   "aACompromise"};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<std::uint64_t> parse_hex(std::string_view text) {
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::string hex(std::uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llX", static_cast<unsigned long long>(value));
  return buf;
}

std::time_t not_after_of(const X509& cert) {
  const auto t = unix_time(X509_get0_notAfter(&cert));
  if (!t) throw std::runtime_error("certificate has an unreadable notAfter");
  return *t;
}

// An exclusive lock on DIR/.lock for as long as it lives: ca.db itself is replaced by rename,
// so a lock on it would not be seen by whoever opens the new file.
class DirectoryLock {
 public:
  explicit DirectoryLock(const std::string& dir) {
    const std::string path = dir + "/.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) {
        const int saved = errno;
        ::close(fd_);
        throw std::runtime_error("cannot lock " + path + ": " + std::strerror(saved));
      }
    }
  }
  ~DirectoryLock() { ::close(fd_); }
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

CaDatabase load_database(const std::string& path) {
  try {
    return CaDatabase::parse(read_text(path));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

}  // namespace

std::optional<int> crl_reason_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kReasonNames.size(); ++i) {
    if (!kReasonNames[i].empty() && kReasonNames[i] == name) return static_cast<int>(i);
  }
  return std::nullopt;
}

std::string_view crl_reason_name(int reason) {
  if (reason < 0 || static_cast<std::size_t>(reason) >= kReasonNames.size()) return "unknown";
  return kReasonNames[static_cast<std::size_t>(reason)];
}

std::string utc_time(std::time_t t, const char* format) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  return std::string(buf, std::strftime(buf, sizeof buf, format, &tm));
}

std::string generalized_time(std::time_t t) {
  return utc_time(t, "%Y%m%d%H%M%SZ");
}

std::optional<std::time_t> parse_generalized_time(std::string_view text) {
  if (text.size() != 15 || text.back() != 'Z') return std::nullopt;
  int fields[6] = {};
  const int widths[6] = {4, 2, 2, 2, 2, 2};
  std::size_t at = 0;
  for (int i = 0; i < 6; ++i) {
    auto [ptr, ec] = std::from_chars(text.data() + at, text.data() + at + widths[i], fields[i]);
    if (ec != std::errc() || ptr != text.data() + at + widths[i]) return std::nullopt;
    at += static_cast<std::size_t>(widths[i]);
  }
  std::tm tm{};
  tm.tm_year = fields[0] - 1900;
  tm.tm_mon = fields[1] - 1;
  tm.tm_mday = fields[2];
  tm.tm_hour = fields[3];
  tm.tm_min = fields[4];
  tm.tm_sec = fields[5];
  const std::time_t t = ::timegm(&tm);
  // timegm normalises out-of-range fields (month 13); a valid time survives the round trip.
  if (generalized_time(t) != text) return std::nullopt;
  return t;
}

CaDatabase CaDatabase::parse(std::string_view text) {
  CaDatabase db;
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    if (line.empty() || line.front() == '#') continue;
    auto fail = [&](const std::string& why) -> void {
      throw std::runtime_error("line " + std::to_string(line_number) + ": " + why);
    };
    // Splits off the next space-separated field.
    auto next = [&]() {
      const std::size_t space = line.find(' ');
      std::string_view field = line.substr(0, space);
      line = space == std::string_view::npos ? std::string_view{} : line.substr(space + 1);
      return field;
    };
    const std::string_view kind = next();
    if (kind == "crl_number") {
      const std::string_view value = next();
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), db.crl_number);
      if (ec != std::errc() || ptr != value.data() + value.size() || !line.empty()) {
        fail("crl_number must be followed by a number");
      }
      continue;
    }
    if (kind != "V" && kind != "R") fail("a record starts with V, R or crl_number");
    CaRecord record;
    const auto serial = parse_hex(next());
    if (!serial) fail("the serial must be hexadecimal, at most 16 digits");
    record.serial = *serial;
    const auto not_after = parse_generalized_time(next());
    if (!not_after) fail("notAfter must be YYYYMMDDHHMMSSZ");
    record.not_after = *not_after;
    const std::string_view revoked = next();
    const std::string_view reason = next();
    if (kind == "R") {
      record.revoked_at = parse_generalized_time(revoked);
      if (!record.revoked_at) fail("a revoked record needs its revocation time");
      if (reason != "-") {
        record.reason = crl_reason_from_name(reason);
        if (!record.reason) fail("unknown revocation reason \"" + std::string(reason) + "\"");
      }
    } else if (revoked != "-" || reason != "-") {
      fail("a valid record has - for revocation time and reason");
    }
    if (line.empty()) fail("the subject is missing");
    record.subject = std::string(line);
    if (db.find(record.serial) != nullptr) fail("serial " + hex(record.serial) + " listed twice");
    db.records.push_back(std::move(record));
  }
  return db;
}

std::string CaDatabase::serialize() const {
  std::string out =
      "# pgmtls CA database (pgmtls pki): status serial notAfter revoked reason subject\n";
  out += "crl_number " + std::to_string(crl_number) + "\n";
  for (const auto& r : records) {
    out += r.revoked_at ? "R " : "V ";
    out += hex(r.serial) + " " + generalized_time(r.not_after) + " ";
    out += r.revoked_at ? generalized_time(*r.revoked_at) : "-";
    out += " ";
    out += r.reason ? std::string(crl_reason_name(*r.reason)) : "-";
    out += " " + r.subject + "\n";
  }
  return out;
}

CaRecord* CaDatabase::find(std::uint64_t serial) {
  for (auto& r : records) {
    if (r.serial == serial) return &r;
  }
  return nullptr;
}

CaDirectory CaDirectory::create(const std::string& dir, const CertificateSpec& spec,
                                std::chrono::seconds crl_validity) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw std::runtime_error("cannot create " + dir + ": " + std::strerror(errno));
  }
  CaDirectory ca(dir, self_signed(spec));
  DirectoryLock lock(dir);
  struct stat st {};
  if (::stat(ca.path("ca.key").c_str(), &st) == 0) {
    throw std::runtime_error(ca.path("ca.key") +
                             " exists: refusing to replace a CA (remove the directory first)");
  }
  // The key first, with O_EXCL semantics given by the check above under the lock.
  write_file_atomically(ca.path("ca.key"), private_key_to_pem(*ca.ca_.key), 0600);
  write_file_atomically(ca.path("ca.crt"), to_pem(*ca.ca_.cert), 0644);
  CaDatabase db;
  ca.write_crl_locked(db, crl_validity);
  return ca;
}

CaDirectory CaDirectory::open(const std::string& dir) {
  Credential credential;
  credential.cert = read_certificate(dir + "/ca.crt");
  credential.key = read_private_key(dir + "/ca.key");
  if (X509_check_private_key(credential.cert.get(), credential.key.get()) != 1) {
    ERR_clear_error();
    throw std::runtime_error(dir + "/ca.key does not belong to " + dir + "/ca.crt");
  }
  return CaDirectory(dir, std::move(credential));
}

Credential CaDirectory::issue(CertificateSpec spec) {
  DirectoryLock lock(dir_);
  CaDatabase db = load_database(path("ca.db"));
  const std::time_t ca_not_after = not_after_of(*ca_.cert);
  const std::time_t wanted = std::time(nullptr) + spec.not_after.count();
  if (wanted > ca_not_after) {
    throw std::runtime_error("the certificate would outlive its CA, which expires " +
                             generalized_time(ca_not_after) + ": ask for fewer days");
  }
  do {
    spec.serial = random_serial();
  } while (db.find(spec.serial) != nullptr);
  Credential issued = pki::issue(spec, ca_);
  db.records.push_back({spec.serial, not_after_of(*issued.cert),
                        name_rfc2253(X509_get_subject_name(issued.cert.get())), std::nullopt,
                        std::nullopt});
  write_file_atomically(path("ca.db"), db.serialize(), 0600);
  return issued;
}

CaRecord CaDirectory::revoke(std::uint64_t serial, std::optional<int> reason,
                             std::chrono::seconds crl_validity) {
  DirectoryLock lock(dir_);
  CaDatabase db = load_database(path("ca.db"));
  CaRecord* record = db.find(serial);
  if (record == nullptr) {
    throw std::runtime_error("serial " + hex(serial) + " was not issued by the CA in " + dir_);
  }
  if (!record->revoked_at) {
    record->revoked_at = std::time(nullptr);
    record->reason = reason;
  }
  const CaRecord result = *record;
  write_crl_locked(db, crl_validity);
  return result;
}

Crl CaDirectory::write_crl(std::chrono::seconds crl_validity) {
  DirectoryLock lock(dir_);
  CaDatabase db = load_database(path("ca.db"));
  return write_crl_locked(db, crl_validity);
}

// The database is written before the CRL: a crash in between leaves the revocation recorded
// and the next `crl` publishes it, never a CRL number the database does not know.
Crl CaDirectory::write_crl_locked(CaDatabase& db, std::chrono::seconds crl_validity) {
  CrlSpec spec;
  spec.last_update = std::chrono::seconds(0);
  spec.next_update = crl_validity;
  spec.crl_number = ++db.crl_number;
  for (const auto& r : db.records) {
    if (r.revoked_at) spec.revoked.push_back({r.serial, *r.revoked_at, r.reason});
  }
  Crl crl = make_crl(spec, ca_);
  write_file_atomically(path("ca.db"), db.serialize(), 0600);
  write_file_atomically(path("crl.pem"), to_pem(*crl), 0644);
  return crl;
}

CaDatabase CaDirectory::database() const {
  return load_database(path("ca.db"));
}

}  // namespace pgmtls::auth::pki
