package importer

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// ProgressBar returns a function for Importer.Progress that draws a bar on w
// (bytes processed of the total, rate, time left), and a function to call
// when the import is over. When isTerminal is false both do nothing, so that
// logs and pipes get no control characters.
func ProgressBar(w io.Writer, isTerminal bool) (progress func(done, total int64), finish func()) {
	if !isTerminal {
		return func(int64, int64) {}, func() {}
	}
	var bar *progressbar.ProgressBar
	progress = func(done, total int64) {
		if total <= 0 {
			return
		}
		if bar == nil {
			bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription("importing"),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionUseANSICodes(true),
			)
		}
		_ = bar.Set64(done)
	}
	finish = func() {
		if bar != nil {
			_ = bar.Finish()
			_, _ = io.WriteString(w, "\n")
		}
	}
	return progress, finish
}
