package layertar

import (
	"io/fs"
	"strconv"
	"syscall"
)

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func nlink(fi fs.FileInfo) uint64 { return uint64(fi.Sys().(*syscall.Stat_t).Nlink) }

func inode(fi fs.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }
