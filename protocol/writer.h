// Writes one protocol message: the type byte (none for the start-up packets), a length patched
// when the message is finished, then the fields. Either into a buffer of its own (the builders,
// which return it) or appended to the caller's (the frontend writers, which reuse one buffer and
// so allocate nothing once it has grown). Internal to protocol/.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "protocol/message.h"

namespace pgmtls::protocol {

class Writer {
 public:
  explicit Writer(char type) : Writer(own_, type) {}
  Writer(std::vector<std::uint8_t>& out, char type) : out_(&out) {
    if (type != 0) out_->push_back(static_cast<std::uint8_t>(type));
    length_at_ = out_->size();
    u32(0);  // patched by end()
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void u8(std::uint8_t v) { out_->push_back(v); }
  void u32(std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
      out_->push_back(static_cast<std::uint8_t>(v >> shift));
  }
  void bytes(std::string_view s) { out_->insert(out_->end(), s.begin(), s.end()); }
  void bytes(Bytes b) { out_->insert(out_->end(), b.begin(), b.end()); }
  void cstring(std::string_view s) {
    bytes(s);
    out_->push_back(0);
  }

  // Patches the length: the message is complete in the caller's buffer.
  void end() {
    const auto length = static_cast<std::uint32_t>(out_->size() - length_at_);
    for (int i = 0; i < 4; ++i)
      (*out_)[length_at_ + i] = static_cast<std::uint8_t>(length >> (24 - 8 * i));
  }
  // The message, from a Writer with a buffer of its own.
  std::vector<std::uint8_t> finish() && {
    end();
    return std::move(own_);
  }

 private:
  std::vector<std::uint8_t> own_;
  std::vector<std::uint8_t>* out_;
  std::size_t length_at_ = 0;
};

}  // namespace pgmtls::protocol
