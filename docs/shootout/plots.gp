
reset
set terminal svg size 2016,560 dynamic font "sans,11" noenhanced
set output "speed.svg"
set title "Speed, ratio to glibc (higher is faster)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set xtics rotate by -40 left nomirror
set grid ytics
set format y "%g"
set ylabel "ratio"
set logscale y 2
plot for [i=2:9] "speed.dat" using i:xtic(1) title columnheader(i)


reset
set terminal svg size 2016,560 dynamic font "sans,11" noenhanced
set output "memory.svg"
set title "Peak RSS (lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top vertical
set xtics rotate by -40 left nomirror
set grid ytics
set format y "%g"
set ylabel "MiB"
set logscale y 2
plot for [i=2:9] "memory.dat" using i:xtic(1) title columnheader(i)


reset
set terminal svg size 1500,460 dynamic font "sans,11" noenhanced
set output "threads.svg"
set multiplot layout 1,3 title "Throughput against threads (higher is better)"
unset key
set grid
set xlabel "threads"
set ylabel "Mops/s"
set logscale x 2
set yrange [0:*]
set title "pairs"
plot for [i=2:9] "threads_pairs.dat" using 1:i with linespoints title columnheader(i)
set title "producer_consumer"
plot for [i=2:9] "threads_producer_consumer.dat" using 1:i with linespoints title columnheader(i)
set key outside right top
set title "larson"
plot for [i=2:9] "threads_larson.dat" using 1:i with linespoints title columnheader(i)
unset multiplot
