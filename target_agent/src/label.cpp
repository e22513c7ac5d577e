// QR rendering of the bootstrap payload with libqrencode (and libpng for PNG).
#include "credprov/agent/label.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <png.h>
#include <qrencode.h>
#include <sodium.h>

namespace credprov::agent {

namespace {
constexpr int kQuiet = 4;  // quiet zone in modules, as ISO/IEC 18004 asks
}

Result<QrMatrix> encode_qr(ByteView payload) {
    // libqrencode wants a C string: copy into a wiped buffer.
    std::vector<char> text(payload.begin(), payload.end());
    text.push_back('\0');
    QRcode* code = QRcode_encodeString(text.data(), 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    sodium_memzero(text.data(), text.size());
    if (code == nullptr) return make_error(ErrorCode::internal, std::string("QR encoding failed: ") + std::strerror(errno));
    QrMatrix m;
    m.size = code->width;
    m.dark.resize(static_cast<std::size_t>(code->width * code->width));
    for (std::size_t i = 0; i < m.dark.size(); ++i) m.dark[i] = (code->data[i] & 1) != 0;
    sodium_memzero(code->data, static_cast<std::size_t>(code->width * code->width));
    QRcode_free(code);
    return m;
}

std::string render_terminal(const QrMatrix& qr) {
    // Light = full block, dark = space; two rows per line with half blocks.
    auto light = [&](int x, int y) {
        if (x < 0 || y < 0 || x >= qr.size || y >= qr.size) return true;
        return !qr.at(x, y);
    };
    std::string out;
    for (int y = -kQuiet; y < qr.size + kQuiet; y += 2) {
        for (int x = -kQuiet; x < qr.size + kQuiet; ++x) {
            const bool top = light(x, y);
            const bool bottom = light(x, y + 1);
            if (top && bottom) out += "\u2588";
            else if (top) out += "\u2580";
            else if (bottom) out += "\u2584";
            else out += " ";
        }
        out += "\n";
    }
    return out;
}

std::string render_svg(const QrMatrix& qr, int px) {
    const int full = (qr.size + 2 * kQuiet) * px;
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                      std::to_string(full) + "\" height=\"" + std::to_string(full) + "\" viewBox=\"0 0 " +
                      std::to_string(full) + " " + std::to_string(full) +
                      "\" shape-rendering=\"crispEdges\">\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n<path fill=\"#000\" d=\"";
    for (int y = 0; y < qr.size; ++y) {
        for (int x = 0; x < qr.size; ++x) {
            if (!qr.at(x, y)) continue;
            out += "M" + std::to_string((x + kQuiet) * px) + "," + std::to_string((y + kQuiet) * px) + "h" +
                   std::to_string(px) + "v" + std::to_string(px) + "h-" + std::to_string(px) + "z";
        }
    }
    out += "\"/>\n</svg>\n";
    return out;
}

Status write_private_file(const std::filesystem::path& path, std::string_view content) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return make_error(ErrorCode::io, "cannot write " + path.string() + ": " + std::strerror(errno));
    std::size_t done = 0;
    while (done < content.size()) {
        const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int e = errno;
            ::close(fd);
            return make_error(ErrorCode::io, "cannot write " + path.string() + ": " + std::strerror(e));
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        return make_error(ErrorCode::io, "cannot write " + path.string() + ": " + std::strerror(errno));
    }
    return {};
}

Status write_png(const QrMatrix& qr, const std::filesystem::path& path, int px) {
    const int full = (qr.size + 2 * kQuiet) * px;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return make_error(ErrorCode::io, "cannot write " + path.string() + ": " + std::strerror(errno));
    FILE* f = ::fdopen(fd, "wb");
    if (f == nullptr) {
        ::close(fd);
        return make_error(ErrorCode::io, "cannot write " + path.string());
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    png_infop info = png != nullptr ? png_create_info_struct(png) : nullptr;
    if (png == nullptr || info == nullptr || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        std::fclose(f);
        return make_error(ErrorCode::io, "cannot encode PNG " + path.string());
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, static_cast<png_uint_32>(full), static_cast<png_uint_32>(full), 1, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    std::vector<png_byte> row(static_cast<std::size_t>((full + 7) / 8));
    for (int y = 0; y < full; ++y) {
        std::fill(row.begin(), row.end(), 0);
        for (int x = 0; x < full; ++x) {
            const int mx = x / px - kQuiet;
            const int my = y / px - kQuiet;
            const bool dark = mx >= 0 && my >= 0 && mx < qr.size && my < qr.size && qr.at(mx, my);
            if (!dark) row[static_cast<std::size_t>(x / 8)] |= static_cast<png_byte>(0x80 >> (x % 8));  // 1 = white
        }
        png_write_row(png, row.data());
    }
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    std::fflush(f);
    ::fsync(::fileno(f));
    if (std::fclose(f) != 0) return make_error(ErrorCode::io, "cannot write " + path.string());
    return {};
}

}  // namespace credprov::agent
