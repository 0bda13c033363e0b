// Package layertar reads and writes the tar streams that carry image
// layers: a layer's files, and whiteouts for what it deletes from the
// layers below.
//
// Extract unpacks a layer (plain tar, gzip or zstd, told apart by magic
// number) into a directory, in one pass, with hard links, symlinks,
// extended attributes, ownership, modes, timestamps, device nodes and
// fifos. Whiteouts follow the OCI image layer specification
// (https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts):
// a file ".wh.NAME" deletes NAME, and ".wh..wh..opq" in a folder hides
// everything below it in lower layers. They are either carried out at once
// (WhiteoutDelete, for drivers that copy layers) or written in the form
// overlayfs reads (WhiteoutOverlay: a 0/0 character device, and the
// trusted.overlay.opaque=y attribute on the folder).
//
// Nothing is ever written outside the target folder. Every path is looked
// up inside it as if it were the root of the file system (openat2 with
// RESOLVE_IN_ROOT, through filepath-securejoin's pathrs-lite, which falls
// back to a careful user-space walk on old kernels), and the last component
// of a name is always created or changed without following a symlink. So a
// symlink to "/etc" inside a layer, and anything written through it, stays
// in the layer, as it will inside the container; a name that climbs out of
// the layer with "../" is refused.
//
// WriteTar does the reverse for a layer folder: a tar stream with
// overlayfs whiteouts turned back into ".wh." entries.
package layertar
