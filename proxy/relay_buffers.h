// The relay's read buffers, lent per worker. A relay direction borrows one for a read and the
// write that forwards it, and gives it back once the stream has gone quiet, so an idle session
// holds no buffer (and TlsStream lets OpenSSL release its record buffers too): idle connections
// cost a few KiB each instead of tens. Each worker has its own pool, touched only on its thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace pgmtls::proxy {

class RelayBuffers {
 public:
  // A TLS record's worth of plaintext: one read takes at most one record's payload.
  static constexpr std::size_t kSize = 16 * 1024;

  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept : pool_(other.pool_), bytes_(std::move(other.bytes_)) {}
    Lease& operator=(Lease&& other) noexcept {
      if (this != &other) {
        reset();
        pool_ = other.pool_;
        bytes_ = std::move(other.bytes_);
      }
      return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { reset(); }

    explicit operator bool() const { return bytes_ != nullptr; }
    std::uint8_t* data() const { return bytes_.get(); }
    // Gives the buffer back to its pool.
    void reset() {
      if (bytes_) pool_->give_back(std::move(bytes_));
    }

   private:
    friend class RelayBuffers;
    Lease(RelayBuffers* pool, std::unique_ptr<std::uint8_t[]> bytes)
        : pool_(pool), bytes_(std::move(bytes)) {}
    RelayBuffers* pool_ = nullptr;
    std::unique_ptr<std::uint8_t[]> bytes_;
  };

  Lease take() {
    if (free_.empty()) return {this, std::make_unique_for_overwrite<std::uint8_t[]>(kSize)};
    Lease lease(this, std::move(free_.back()));
    free_.pop_back();
    return lease;
  }

  std::size_t free_count() const { return free_.size(); }

 private:
  // Kept for reuse beyond this many, a buffer goes back to the allocator: a burst of busy
  // sessions does not pin its memory forever.
  static constexpr std::size_t kMaxFree = 256;

  void give_back(std::unique_ptr<std::uint8_t[]> bytes) {
    if (free_.size() < kMaxFree) free_.push_back(std::move(bytes));
  }

  std::vector<std::unique_ptr<std::uint8_t[]>> free_;
};

}  // namespace pgmtls::proxy
